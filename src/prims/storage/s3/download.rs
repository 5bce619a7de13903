//! Reading S3 objects: one streamed GetObject for a small object or range, else ranged GETs of one part
//! size each, `concurrency` in flight and reassembled in order, all pinned to the ETag first seen (a
//! whole object's first GET tells its size and ETag; a range asks HEAD). A
//! ranged GET whose body breaks off midway is sent again (the SDK retries the request itself).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::objects::head_object;
use super::{Cfg, s3_error};
use crate::base::retry::{Policy, Retryable};
use crate::base::stream::BoxReader;
use crate::prims::storage::Range;

/// A ranged GET whose body breaks off is sent again up to 3 times, after 200, 400 and 600 ms.
const BODY_BACKOFF: Policy = Policy::linear(Duration::from_millis(200), 3);

/// Streams `key` (or `range` of it); a missing object is an error naming it.
pub(super) async fn reader(cfg: Arc<Cfg>, key: String, range: Range) -> anyhow::Result<BoxReader> {
    let what = cfg.url(&key);
    let full = cfg.full(&key);
    if range.offset == 0 && range.length.is_none() {
        return whole(cfg, full, what).await;
    }
    let head = head_object(&cfg, &key)
        .await?
        .ok_or_else(|| not_found(&what))?;
    let start = range.offset.min(head.size);
    let end = match range.length {
        Some(l) => start.saturating_add(l).min(head.size),
        None => head.size,
    };
    if start >= end {
        return Ok(Box::pin(tokio::io::empty()) as BoxReader);
    }
    let part = cfg.part_size as u64;
    let etag = head.etag.clone();
    if end - start <= part || cfg.concurrency == 1 {
        let mut req = cfg.client.get_object().bucket(&cfg.bucket).key(&full);
        if start > 0 || end < head.size {
            req = req.range(format!("bytes={}-{}", start, end - 1));
        }
        if let Some(e) = &etag {
            req = req.if_match(format!("\"{e}\""));
        }
        let out = req
            .send()
            .await
            .map_err(|e| s3_error("GetObject", &what, e))?;
        return Ok(Box::pin(out.body.into_async_read()) as BoxReader);
    }
    Ok(ranged(cfg, full, what, etag, start, end))
}

/// A whole object: one GetObject, whose answer gives the size and ETag a HEAD would have, so a small
/// object costs one request. A large one (over a part, with concurrency) is read with ranged GETs pinned
/// to that ETag instead; the first answer's body is dropped unread.
async fn whole(cfg: Arc<Cfg>, full: String, what: String) -> anyhow::Result<BoxReader> {
    let res = cfg
        .client
        .get_object()
        .bucket(&cfg.bucket)
        .key(&full)
        .send()
        .await;
    let out = match res {
        Ok(o) => o,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            return Err(not_found(&what));
        }
        Err(e) => return Err(s3_error("GetObject", &what, e)),
    };
    let size = out.content_length().unwrap_or(0).max(0) as u64;
    if size <= cfg.part_size as u64 || cfg.concurrency == 1 {
        return Ok(Box::pin(out.body.into_async_read()) as BoxReader);
    }
    let etag = out.e_tag().map(|e| e.trim_matches('"').to_string());
    drop(out);
    Ok(ranged(cfg, full, what, etag, 0, size))
}

/// Parallel ranged GETs of `start..end`, reassembled in order; `buffered` bounds what is in memory.
fn ranged(
    cfg: Arc<Cfg>,
    full: String,
    what: String,
    etag: Option<String>,
    start: u64,
    end: u64,
) -> BoxReader {
    let part = cfg.part_size as u64;
    let ranges: Vec<(u64, u64)> = (start..end)
        .step_by(part as usize)
        .map(|s| (s, (s + part).min(end)))
        .collect();
    let conc = cfg.concurrency;
    let stream = futures::stream::iter(ranges)
        .map(move |(s, e)| {
            let cfg = cfg.clone();
            let full = full.clone();
            let what = what.clone();
            let etag = etag.clone();
            async move { get_range(&cfg, &full, &what, etag.as_deref(), s, e).await }
        })
        .buffered(conc)
        .map_err(|e| std::io::Error::other(format!("{e:#}")));
    Box::pin(tokio_util::io::StreamReader::new(stream)) as BoxReader
}

fn not_found(what: &str) -> anyhow::Error {
    anyhow!("no object {what} (not found)")
}

async fn get_range(
    cfg: &Cfg,
    full: &str,
    what: &str,
    etag: Option<&str>,
    start: u64,
    end: u64,
) -> anyhow::Result<Bytes> {
    // The SDK retries the request; a body cut off midway is retried here.
    let range = format!("bytes={}-{}", start, end - 1);
    let read = || async {
        let mut req = cfg
            .client
            .get_object()
            .bucket(&cfg.bucket)
            .key(full)
            .range(&range);
        if let Some(e) = etag {
            req = req.if_match(format!("\"{e}\""));
        }
        let out = req
            .send()
            .await
            .map_err(|e| s3_error("GetObject", &format!("{what} bytes {start}-{end}"), e))
            .map_err(RangeFailed::Request)?;
        out.body.collect().await.map_err(RangeFailed::Body)
    };
    let body = read
        .retry(BODY_BACKOFF)
        .when(|f| matches!(f, RangeFailed::Body(_)))
        .notify(|f, _| {
            if let RangeFailed::Body(e) = f {
                tracing::warn!("reading {what} at {start}: {e}; retrying");
            }
        })
        .await;
    let b = match body {
        Ok(b) => b.into_bytes(),
        Err(RangeFailed::Request(e)) => return Err(e),
        Err(RangeFailed::Body(e)) => bail!("S3 GetObject {what} bytes {start}-{end}: {e}"),
    };
    if b.len() as u64 != end - start {
        bail!(
            "S3 GetObject {what}: expected {} bytes at offset {start}, got {}",
            end - start,
            b.len()
        );
    }
    Ok(b)
}

/// Why a ranged GET failed: the request (the SDK retried it already), or its body midway.
enum RangeFailed {
    Request(anyhow::Error),
    Body(aws_smithy_types::byte_stream::error::Error),
}
