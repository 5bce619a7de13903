//! Calls on whole objects rather than their bytes: ListObjectsV2 pages fetched as the caller consumes
//! them, HeadObject (with the HeadBucket check that tells a missing bucket from a missing key) and
//! DeleteObjects batches of up to 1000 keys.

use std::sync::Arc;

use anyhow::bail;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::stream::BoxStream;

use super::{Cfg, s3_error, status_of};
use crate::prims::storage::ObjectMeta;

/// DeleteObjects takes at most 1000 keys per call.
const DELETE_BATCH: usize = 1000;

/// Pages of the objects under `prefix`, one ListObjectsV2 call each.
pub(super) fn list(
    cfg: Arc<Cfg>,
    prefix: &str,
) -> BoxStream<'static, anyhow::Result<Vec<ObjectMeta>>> {
    let full_prefix = {
        let p = cfg.prefix.trim_matches('/');
        if p.is_empty() {
            prefix.to_string()
        } else {
            format!("{p}/{prefix}")
        }
    };
    // State: None = finished; Some(token) = fetch the next page (first page: Some(None)).
    Box::pin(futures::stream::unfold(
        Some(None::<String>),
        move |state| {
            let cfg = cfg.clone();
            let full_prefix = full_prefix.clone();
            async move {
                let token = state?;
                let res = cfg
                    .client
                    .list_objects_v2()
                    .bucket(&cfg.bucket)
                    .prefix(&full_prefix)
                    .set_continuation_token(token)
                    .send()
                    .await;
                let out = match res {
                    Ok(o) => o,
                    Err(e) => {
                        let what = format!("s3://{}/{}", cfg.bucket, full_prefix);
                        return Some((Err(s3_error("ListObjectsV2", &what, e)), None));
                    }
                };
                let page: Vec<ObjectMeta> = out
                    .contents()
                    .iter()
                    .filter_map(|o| {
                        let k = o.key()?;
                        Some(ObjectMeta {
                            key: cfg.rel(k),
                            size: o.size().unwrap_or(0).max(0) as u64,
                            mtime: o.last_modified().map(|t| t.as_secs_f64()),
                            etag: o.e_tag().map(|e| e.trim_matches('"').to_string()),
                        })
                    })
                    .collect();
                let next = if out.is_truncated() == Some(true) {
                    out.next_continuation_token().map(|t| Some(t.to_string()))
                } else {
                    None
                };
                Some((Ok(page), next))
            }
        },
    ))
}

pub(super) async fn head_object(cfg: &Cfg, key: &str) -> anyhow::Result<Option<ObjectMeta>> {
    Ok(head_raw(cfg, key).await?.map(|o| ObjectMeta {
        key: key.to_string(),
        size: o.content_length().unwrap_or(0).max(0) as u64,
        mtime: o.last_modified().map(|t| t.as_secs_f64()),
        etag: o.e_tag().map(|e| e.trim_matches('"').to_string()),
    }))
}

/// HeadObject; `None` when the key does not exist (a missing bucket is an error).
pub(super) async fn head_raw(cfg: &Cfg, key: &str) -> anyhow::Result<Option<HeadObjectOutput>> {
    let what = cfg.url(key);
    let res = cfg
        .client
        .head_object()
        .bucket(&cfg.bucket)
        .key(cfg.full(key))
        .send()
        .await;
    match res {
        Ok(o) => Ok(Some(o)),
        Err(e) if status_of(&e) == Some(404) => {
            // HEAD answers have no body: a missing bucket looks like a missing key. Tell them apart
            // once per store with HeadBucket, so that a wrong bucket is an error, not "absent".
            check_bucket(cfg, &what).await?;
            Ok(None)
        }
        Err(e) if status_of(&e) == Some(403) => bail!(
            "S3 HeadObject {what}: AccessDenied (HTTP 403; check the credentials and the bucket policy)"
        ),
        Err(e) => Err(s3_error("HeadObject", &what, e)),
    }
}

async fn check_bucket(cfg: &Cfg, what: &str) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    if cfg.bucket_ok.load(Ordering::Relaxed) {
        return Ok(());
    }
    match cfg.client.head_bucket().bucket(&cfg.bucket).send().await {
        Ok(_) => {
            cfg.bucket_ok.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) if status_of(&e) == Some(404) => bail!(
            "S3 HeadObject {what}: NoSuchBucket: bucket '{}' does not exist",
            cfg.bucket
        ),
        // Without ListBucket/HeadBucket permission the key is simply absent.
        Err(e) if status_of(&e) == Some(403) => Ok(()),
        Err(e) => Err(s3_error("HeadBucket", what, e)),
    }
}

/// Deletes `keys` (missing ones included) in batches; returns how many S3 reports deleted.
pub(super) async fn delete(cfg: Arc<Cfg>, keys: Vec<String>) -> anyhow::Result<usize> {
    let mut n = 0;
    for batch in keys.chunks(DELETE_BATCH) {
        let ids = batch
            .iter()
            .map(|k| ObjectIdentifier::builder().key(cfg.full(k)).build())
            .collect::<Result<Vec<_>, _>>()?;
        let what = format!(
            "{} keys in s3://{}/{} ({}...)",
            batch.len(),
            cfg.bucket,
            cfg.prefix,
            batch[0]
        );
        let out = cfg
            .client
            .delete_objects()
            .bucket(&cfg.bucket)
            .delete(Delete::builder().set_objects(Some(ids)).build()?)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObjects", &what, e))?;
        if let Some(err) = out.errors().first() {
            bail!(
                "S3 DeleteObjects s3://{}/{}: {}: {}",
                cfg.bucket,
                err.key().unwrap_or("?"),
                err.code().unwrap_or("error"),
                err.message().unwrap_or("")
            );
        }
        n += out.deleted().len();
    }
    Ok(n)
}
