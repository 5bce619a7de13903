//! Consumer group rebalances: librdkafka calls the consumer context from inside `poll` when the group
//! gives this consumer partitions or takes them away. The context only records what happened (it runs
//! inside `poll`, where the archive state is already locked); the poller applies it right after `poll`
//! returns, before it looks at the message that `poll` returned (`take_revoked`).
//!
//! What happens to the work of a revoked partition: it is dropped, not written. Offsets are committed only
//! after a batch's object is written, so everything of the partition that was not yet written is still
//! uncommitted, and its next owner reads it again from the committed offset. Dropping therefore loses
//! nothing and guarantees that no consumer writes an object (or commits) for a partition it no longer
//! owns. Writing the batches instead would mean store writes inside librdkafka's rebalance callback (which
//! holds up the whole group's rebalance for as long as the writes take) and commits racing the next
//! owner's reads. The cost is re-reading at most one open batch per revoked partition.
//!
//! Works with the eager protocol (librdkafka's default: every partition is revoked, then the new set is
//! assigned) and with `partition.assignment.strategy=cooperative-sticky` (only the moved ones): rdkafka's
//! default `rebalance` does the (incremental) assign/unassign between `pre_rebalance` and `post_rebalance`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};

use super::Ctx;
use super::consumer::Tp;

/// What the group did to this consumer, as seen by the rebalance callbacks.
#[derive(Default)]
pub struct Rebalances {
    /// Set when `revoked` holds something, so that the poller's check costs one atomic load.
    pending: AtomicBool,
    /// Partitions taken away since the poller last looked. A partition given back in the same rebalance
    /// stays here: its open work predates the revocation, and librdkafka reads it again from the
    /// committed offset.
    revoked: Mutex<Vec<Tp>>,
}

fn tps(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// "ev-0,ev-1" (the topic-partition names the archive's object keys use).
pub fn names(tps: &[Tp]) -> String {
    let v: Vec<String> = tps.iter().map(|(t, p)| format!("{t}-{p}")).collect();
    v.join(",")
}

impl Rebalances {
    fn revoke(&self, list: Vec<Tp>) {
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(list);
        self.pending.store(true, Ordering::Release);
    }

    /// The partitions revoked since the last call (empty at the cost of one atomic load when none were).
    pub fn take_revoked(&self) -> Vec<Tp> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let list = tps(tpl);
                tracing::info!(target: "kafka", partitions = %names(&list), "kafka: partitions revoked");
                self.rebalances.revoke(list);
            }
            Rebalance::Error(e) => tracing::warn!(
                target: "kafka",
                "kafka: rebalance error: {}",
                crate::base::redact::redact(&e.to_string())
            ),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let list = tps(tpl);
            tracing::info!(target: "kafka", partitions = %names(&list), "kafka: partitions assigned");
        }
    }
}
