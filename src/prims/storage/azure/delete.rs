//! Deleting Azure blobs: Blob Batch requests of up to 256 keys (object_store's `delete_stream`), 4 in
//! flight, with the keys of a batch lost in transport or answered 5xx, 429 or 408 sent again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path as OPath;

use super::{Cfg, az_error, check_container, sub_status};
use crate::base::retry::{Policy, RetryableWithContext};

/// A Blob Batch request carries at most 256 sub-requests.
const DELETE_BATCH: usize = 256;
const DELETE_CONCURRENCY: usize = 4;
/// Pending keys are sent again up to 4 times, after 200, 400, 800 and 1600 ms.
const DELETE_RETRIES: u32 = 4;
const DELETE_BACKOFF: Policy =
    Policy::doubling(Duration::from_millis(200), DELETE_RETRIES as usize);

/// Deletes `keys` (missing ones included); returns how many were deleted.
pub(super) async fn delete(cfg: Arc<Cfg>, keys: Vec<String>) -> anyhow::Result<usize> {
    // A key listed twice would be deleted once and then be "missing": send it once.
    let mut seen = std::collections::HashSet::new();
    let keys: Vec<String> = keys
        .into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect();
    let batches: Vec<Vec<String>> = keys.chunks(DELETE_BATCH).map(<[_]>::to_vec).collect();
    // The first error stops the deletion (batches in flight are dropped).
    futures::stream::iter(batches)
        .map(|batch| delete_batch(cfg.clone(), batch))
        .buffer_unordered(DELETE_CONCURRENCY)
        .try_fold(0, |n, c| futures::future::ready(Ok(n + c)))
        .await
}

/// Deletes up to 256 keys with one Blob Batch request (object_store's `delete_stream`; its single
/// `delete` is a batch of one too). object_store retries a batch answered 5xx, 429 or 408; sent again
/// here with backoff: a batch lost in transport (object_store does not resend a POST that may have
/// arrived) and sub-requests answered 5xx, 429 or 408. Any other failure names container and key. A
/// batch sent twice may count keys its first attempt deleted as missing.
async fn delete_batch(cfg: Arc<Cfg>, keys: Vec<String>) -> anyhow::Result<usize> {
    let batch = Batch {
        pending: keys,
        deleted: 0,
        missing: None,
        attempts: 0,
    };
    let (batch, res) = (|mut batch: Batch| {
        let cfg = cfg.clone();
        async move {
            let res = delete_pending(&cfg, &mut batch).await;
            (batch, res)
        }
    })
    .retry(DELETE_BACKOFF)
    .context(batch)
    .when(|f| f.retry)
    .notify(|f, _| {
        for line in &f.retrying {
            tracing::debug!("{line}; retrying");
        }
    })
    .await;
    res.map_err(|f| f.error)?;
    if let Some(k) = batch.missing {
        check_container(&cfg, &k, "DeleteBlob").await?;
    }
    Ok(batch.deleted)
}

/// A batch deletion's progress, carried from one attempt to the next.
struct Batch {
    /// Keys not deleted yet: all of them, then those whose sub-request failed transiently.
    pending: Vec<String>,
    deleted: usize,
    /// The first key found missing (the container is checked once the batch is done).
    missing: Option<String>,
    attempts: u32,
}

/// Why an attempt left keys pending.
struct DeleteFailed {
    /// Every failure was transient and this was not the last attempt: send the pending keys again.
    retry: bool,
    /// What the deletion fails with when it is not retried.
    error: anyhow::Error,
    /// The transient failures, logged when retried.
    retrying: Vec<String>,
}

/// One Blob Batch request for the pending keys. The last attempt fails with the first key that failed;
/// an earlier one with the first key that failed for good, else it asks to send the rest again.
async fn delete_pending(cfg: &Cfg, batch: &mut Batch) -> Result<(), DeleteFailed> {
    let last = batch.attempts == DELETE_RETRIES;
    batch.attempts += 1;
    let paths: Vec<object_store::Result<OPath>> =
        batch.pending.iter().map(|k| Ok(cfg.path(k))).collect();
    let results: Vec<object_store::Result<OPath>> = cfg
        .store
        .delete_stream(futures::stream::iter(paths).boxed())
        .collect()
        .await;
    if results.len() != batch.pending.len() {
        // The batch request itself failed: one error for all its keys.
        let what = format!(
            "{} and {} more keys",
            cfg.url(&batch.pending[0]),
            batch.pending.len() - 1
        );
        let Some(e) = results.into_iter().find_map(Result::err) else {
            return Err(DeleteFailed {
                retry: false,
                error: anyhow!("Azure BlobBatch {what}: fewer answers than keys"),
                retrying: Vec::new(),
            });
        };
        return Err(DeleteFailed {
            retry: !last && transport_error(&e),
            retrying: vec![format!("Azure BlobBatch {what}: {e}")],
            error: az_error("BlobBatch", &what, e),
        });
    }
    let mut again = Vec::new();
    let mut first_error = None;
    let mut retrying = Vec::new();
    for (k, r) in std::mem::take(&mut batch.pending).into_iter().zip(results) {
        match r {
            Ok(_) => batch.deleted += 1,
            Err(object_store::Error::NotFound { .. }) => {
                batch.missing.get_or_insert(k);
            }
            // A batch of one key that failed in transport reports that here, too.
            Err(e) if !last && (transport_error(&e) || sub_status(&e).is_some_and(transient)) => {
                retrying.push(format!("Azure DeleteBlob {}: {e}", cfg.url(&k)));
                first_error.get_or_insert_with(|| az_error("DeleteBlob", &cfg.url(&k), e));
                again.push(k);
            }
            Err(e) => {
                return Err(DeleteFailed {
                    retry: false,
                    error: az_error("DeleteBlob", &cfg.url(&k), e),
                    retrying: Vec::new(),
                });
            }
        }
    }
    batch.pending = again;
    match first_error {
        None => Ok(()),
        Some(error) => Err(DeleteFailed {
            retry: true,
            error,
            retrying,
        }),
    }
}

/// A request that failed in transport (connection dropped or timed out), not with an HTTP status.
fn transport_error(e: &object_store::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<object_store::client::HttpError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}
