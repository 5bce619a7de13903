//! Sending for `send_lines`: a `BaseProducer` polled by the sending thread, and delivery counting.
//!
//! Why a `BaseProducer` polled by the sending thread (as kcat does) and not a `FutureProducer` or a
//! `ThreadedProducer`: the fast path enqueues from one blocking thread that checks each line; a delivery
//! callback counts results in atomics. There is no future, oneshot channel or allocation per message, and
//! librdkafka's queue (queue.buffering.max.messages) bounds the messages in flight: when it is full,
//! `send` returns QueueFull and the sender polls for delivery reports until there is room, so memory stays
//! bounded however large the input. A second polling thread would take the delivery reports that `flush`
//! waits for, leaving flush (and the thread's join on drop) to sleep out 100 ms polls: ~0.3 s per run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};

use super::Tally;
use crate::prims::kafka::Ctx;

/// Delivery results, counted by librdkafka's poll thread.
#[derive(Default)]
pub(in crate::prims::kafka) struct Counters {
    pub(super) sent: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) first_error: Mutex<Option<String>>,
}

/// The producer's context: librdkafka logs and errors go to `Ctx`; each message carries the `Counters`
/// of the `send_lines` call that sent it (a transactional producer serves several calls).
pub(in crate::prims::kafka) struct LinesCtx {
    pub(in crate::prims::kafka) base: Ctx,
}

impl rdkafka::client::ClientContext for LinesCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        self.base.log(level, fac, msg)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.base.error(error, reason)
    }
}

impl ProducerContext for LinesCtx {
    type DeliveryOpaque = Arc<Counters>;
    fn delivery(&self, r: &DeliveryResult<'_>, counters: Arc<Counters>) {
        match r {
            Ok(m) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                counters
                    .bytes
                    .fetch_add(m.payload_len() as u64, Ordering::Relaxed);
            }
            Err((e, m)) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = counters.first_error.lock()
                    && first.is_none()
                {
                    *first = Some(format!(
                        "delivery to topic {} partition {} failed: {e}",
                        m.topic(),
                        m.partition()
                    ));
                }
            }
        }
    }
}

pub(in crate::prims::kafka) type Prod = BaseProducer<LinesCtx>;

/// One message to enqueue: the line itself, or what an envelope line decoded to.
#[derive(Default)]
pub(super) struct Out<'a> {
    pub(super) payload: Option<&'a [u8]>,
    pub(super) key: Option<&'a [u8]>,
    pub(super) headers: Option<OwnedHeaders>,
    pub(super) timestamp: Option<i64>,
    pub(super) partition: Option<i32>,
}

/// Messages sent between two non-blocking polls for delivery reports.
const POLL_EVERY: u64 = 1024;

/// Enqueues one message; while librdkafka's queue is full, serves delivery reports until there is room.
pub(super) fn enqueue_blocking(
    p: &Prod,
    counters: &Arc<Counters>,
    topic: &str,
    out: Out<'_>,
    t: &mut Tally,
) {
    let mut rec: BaseRecord<'_, [u8], [u8], Arc<Counters>> =
        BaseRecord::with_opaque_to(topic, counters.clone());
    if let Some(v) = out.payload {
        rec = rec.payload(v);
    }
    if let Some(k) = out.key {
        rec = rec.key(k);
    }
    if let Some(h) = out.headers {
        rec = rec.headers(h);
    }
    if let Some(ts) = out.timestamp {
        rec = rec.timestamp(ts);
    }
    if let Some(part) = out.partition {
        rec = rec.partition(part);
    }
    t.enqueued += 1;
    if t.enqueued.is_multiple_of(POLL_EVERY) {
        p.poll(Duration::ZERO);
    }
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                // Serves delivery reports for the whole 5 ms (a full queue empties only as they are).
                p.poll(Duration::from_millis(5));
            }
            Err((e, _)) => {
                t.enqueue_failed += 1;
                t.enqueue_error
                    .get_or_insert_with(|| format!("enqueue to topic {topic} failed: {e}"));
                return;
            }
        }
    }
}

/// Waits until every message is delivered or failed (librdkafka's message.timeout.ms bounds it),
/// serving delivery reports in short polls. (rdkafka's `flush` polls for up to 100 ms between checks.)
pub(in crate::prims::kafka) fn flush(p: &Prod) {
    while p.in_flight_count() > 0 {
        p.poll(Duration::from_millis(1));
    }
}
