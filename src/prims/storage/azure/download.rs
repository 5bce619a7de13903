//! Reading Azure blobs: one ranged GET for a small blob or range, else ranged GETs of `part_size` each,
//! `concurrency` in flight and reassembled in order, all pinned to the ETag the reader started with.

use std::sync::Arc;

use anyhow::bail;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use super::{Cfg, az_error};
use crate::base::stream::BoxReader;
use crate::prims::storage::Range;

/// Streams `key` (or `range` of it); a missing blob is an error naming it.
pub(super) async fn reader(cfg: Arc<Cfg>, key: String, range: Range) -> anyhow::Result<BoxReader> {
    let what = cfg.url(&key);
    let path = cfg.path(&key);
    let head = match cfg.store.head(&path).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => {
            bail!("no object {what} (not found)")
        }
        Err(e) => return Err(az_error("GetBlobProperties", &what, e)),
    };
    let start = range.offset.min(head.size);
    let end = match range.length {
        Some(l) => start.saturating_add(l).min(head.size),
        None => head.size,
    };
    if start >= end {
        return Ok(Box::pin(tokio::io::empty()) as BoxReader);
    }
    let part = cfg.part_size as u64;
    if end - start <= part || cfg.concurrency == 1 {
        let res = get_range(&cfg, &path, &what, start..end, head.e_tag.clone()).await?;
        let s = res.into_stream().map_err(std::io::Error::other);
        return Ok(Box::pin(tokio_util::io::StreamReader::new(s)) as BoxReader);
    }
    let ranges: Vec<std::ops::Range<u64>> = (start..end)
        .step_by(part as usize)
        .map(|s| s..(s + part).min(end))
        .collect();
    let conc = cfg.concurrency;
    let etag = head.e_tag.clone();
    let stream = futures::stream::iter(ranges)
        .map(move |r| {
            let cfg = cfg.clone();
            let path = path.clone();
            let what = what.clone();
            let etag = etag.clone();
            async move {
                let res = get_range(&cfg, &path, &what, r, etag).await?;
                let b: Bytes = res
                    .bytes()
                    .await
                    .map_err(|e| az_error("GetBlob", &what, e))?;
                anyhow::Ok(b)
            }
        })
        .buffered(conc)
        .map_err(|e| std::io::Error::other(format!("{e:#}")));
    Ok(Box::pin(tokio_util::io::StreamReader::new(stream)) as BoxReader)
}

/// One ranged GET, pinned to the ETag the reader started with (a blob replaced mid-read fails).
async fn get_range(
    cfg: &Cfg,
    path: &object_store::path::Path,
    what: &str,
    range: std::ops::Range<u64>,
    etag: Option<String>,
) -> anyhow::Result<object_store::GetResult> {
    let opts = GetOptions {
        range: Some(GetRange::Bounded(range)),
        if_match: etag,
        ..Default::default()
    };
    cfg.store
        .get_opts(path, opts)
        .await
        .map_err(|e| az_error("GetBlob", what, e))
}
