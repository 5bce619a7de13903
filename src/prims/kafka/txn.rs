//! Kafka transactions: `p:begin_transaction()`, `p:commit_transaction()`, `p:abort_transaction()` on a
//! producer made with `transactional_id`. Every `send_lines` between begin and commit goes into the
//! transaction, so a `read_committed` consumer sees all of those messages or none.
//!
//! One librdkafka client per producer serves every transaction: `init_transactions` runs once, on the
//! first begin, and fences any older producer with the same transactional id (a crashed earlier run's
//! open transaction is aborted by the broker then). A commit that fails with an abortable error is
//! aborted here, so the caller only has to report it; after a commit or abort that failed (fenced by a newer
//! producer, or the brokers out of reach) the client is dropped and the next begin makes a new one.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaError};
use rdkafka::producer::Producer as _;

use super::lines::{LinesCtx, Prod, flush};
use super::producer::Producer;
use crate::base::errors::IntoLua;

/// The transactional client and whether a transaction is open on it.
pub struct Txn {
    prod: Arc<Prod>,
    open: bool,
}

fn error(msg: String) -> mlua::Error {
    crate::base::errors::lua_error(anyhow::anyhow!(msg))
}

fn not_transactional(what: &str) -> mlua::Error {
    super::usage(format!(
        "kafka: {what} needs a transactional producer (kafka.producer{{transactional_id = \"...\"}})"
    ))
}

/// The client `send_lines` must use: the transactional one while a transaction is open, or None for a
/// plain producer. A transactional producer outside a transaction is an error (librdkafka would refuse
/// every message).
pub fn producer_in_transaction(p: &Producer) -> mlua::Result<Option<Arc<Prod>>> {
    if !p.transactional {
        return Ok(None);
    }
    match p.txn.borrow().as_ref() {
        Some(t) if t.open => Ok(Some(t.prod.clone())),
        _ => Err(super::usage(
            "kafka: send_lines on a transactional producer needs p:begin_transaction() first",
        )),
    }
}

fn txn_error(e: &KafkaError) -> Option<&RDKafkaError> {
    match e {
        KafkaError::Transaction(e) => Some(e),
        _ => None,
    }
}

pub async fn begin(p: &Producer, timeout: Duration) -> mlua::Result<()> {
    if !p.transactional {
        return Err(not_transactional("begin_transaction"));
    }
    let existing = p.txn.borrow().as_ref().map(|t| (t.prod.clone(), t.open));
    let prod = match existing {
        Some((_, true)) => {
            return Err(error(
                "kafka: begin_transaction: a transaction is already open (commit or abort it first)".into(),
            ));
        }
        Some((prod, false)) => prod,
        None => {
            let prod: Arc<Prod> = Arc::new(
                p.config
                    .create_with_context(LinesCtx {
                        base: p.ctx.clone(),
                    })
                    .map_err(|e| super::usage(format!("kafka producer: {e}")))?,
            );
            let (pr, hint) = (prod.clone(), p.ctx.hint());
            crate::base::blocking::spawn_blocking(move || pr.init_transactions(timeout))
                .await
                .lua_err()?
                .map_err(|e| error(format!("kafka: init_transactions failed: {e}{hint}")))?;
            prod
        }
    };
    let pr = prod.clone();
    crate::base::blocking::spawn_blocking(move || pr.begin_transaction())
        .await
        .lua_err()?
        .map_err(|e| {
            error(format!(
                "kafka: begin_transaction failed: {e}{}",
                p.ctx.hint()
            ))
        })?;
    *p.txn.borrow_mut() = Some(Txn { prod, open: true });
    Ok(())
}

/// The open transaction's client, marked closed (whatever the outcome of the commit or abort).
fn take_open(p: &Producer, what: &str) -> mlua::Result<Arc<Prod>> {
    let mut slot = p.txn.borrow_mut();
    match slot.as_mut() {
        Some(t) if t.open => {
            t.open = false;
            Ok(t.prod.clone())
        }
        _ => Err(error(format!("kafka: {what}: no transaction is open"))),
    }
}

/// After a failed commit or abort the client's transaction state is unknown (fenced, or still in an
/// abortable error when the brokers could not be reached): the next begin makes a new client, whose
/// init_transactions fences this one and has the broker abort whatever it left open.
fn drop_client(p: &Producer) {
    *p.txn.borrow_mut() = None;
}

pub async fn commit(p: &Producer, timeout: Duration) -> mlua::Result<()> {
    if !p.transactional {
        return Err(not_transactional("commit_transaction"));
    }
    let prod = take_open(p, "commit_transaction")?;
    let pr = prod.clone();
    let res = crate::base::blocking::spawn_blocking(move || {
        // A retriable failure (a coordinator moving, a timeout) may be retried with the same call.
        let mut last = None;
        for _ in 0..3 {
            match pr.commit_transaction(timeout) {
                Ok(()) => return Ok(()),
                Err(e) if txn_error(&e).is_some_and(|t| t.is_retriable()) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("three attempts"))
    })
    .await
    .lua_err()?;
    let Err(e) = res else { return Ok(()) };
    let hint = p.ctx.hint();
    if txn_error(&e).is_some_and(|t| t.txn_requires_abort()) {
        let pr = prod.clone();
        let aborted = crate::base::blocking::spawn_blocking(move || pr.abort_transaction(timeout))
            .await
            .lua_err()?;
        let how = match &aborted {
            Ok(()) => {
                "it was aborted: none of its messages will be seen by read_committed consumers"
                    .to_string()
            }
            Err(a) => format!(
                "aborting it failed too ({a}); the broker aborts it when transaction.timeout.ms passes"
            ),
        };
        if aborted.is_err() {
            drop_client(p);
        }
        return Err(error(format!(
            "kafka: committing the transaction failed: {e}; {how}{hint}"
        )));
    }
    drop_client(p);
    Err(error(format!(
        "kafka: committing the transaction failed: {e}; its messages are not committed{hint}"
    )))
}

pub async fn abort(p: &Producer, timeout: Duration) -> mlua::Result<()> {
    if !p.transactional {
        return Err(not_transactional("abort_transaction"));
    }
    let prod = take_open(p, "abort_transaction")?;
    let pr = prod.clone();
    let res = crate::base::blocking::spawn_blocking(move || {
        // Delivery reports of messages still queued are served first; abort purges the rest.
        pr.abort_transaction(timeout).inspect(|_| flush(&pr))
    })
    .await
    .lua_err()?;
    if let Err(e) = res {
        drop_client(p);
        return Err(error(format!(
            "kafka: aborting the transaction failed: {e}; the broker aborts it when transaction.timeout.ms passes{}",
            p.ctx.hint()
        )));
    }
    Ok(())
}
