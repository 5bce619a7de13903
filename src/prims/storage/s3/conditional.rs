//! Conditional requests, the ground of leases: a GET that returns the body and its ETag, PutObject with
//! `If-None-Match: *` (create) or `If-Match: <etag>` (compare-and-swap), DeleteObject with `If-Match`.
//! AWS S3 honours all three (conditional deletes on general purpose buckets since 2025), and so does
//! moto; a server that ignores them (Garage 2.5 ignores If-None-Match) cannot hold leases.
//!
//! A conditional PutObject that meets a concurrent one (409 ConditionalRequestConflict) is sent again.
//! A request whose answer was lost is resent by the SDK's retries: the resent conditional request then
//! finds the server changed by its first copy (412). Callers that must tell "mine" from "someone else's"
//! put a unique token in the body and read the object back (`rewind.lock` does); `idempotent` creates
//! compare the bytes (see `storage::lua`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::{Cfg, s3_error, status_of};
use crate::base::retry::{Policy, Retryable};
use crate::prims::storage::Versioned;

/// A conditional PutObject that meets a concurrent one (409) is sent again up to 5 times, after 100,
/// 200, 300, 400 and 500 ms.
const CONDITIONAL_WRITE_BACKOFF: Policy = Policy::linear(Duration::from_millis(100), 5);
/// A GET whose body breaks off is sent again up to 3 times, after 200, 400 and 600 ms.
const BODY_BACKOFF: Policy = Policy::linear(Duration::from_millis(200), 3);

fn unquote(etag: Option<&str>, what: &str) -> anyhow::Result<String> {
    etag.map(|e| e.trim_matches('"').to_string())
        .ok_or_else(|| anyhow!("S3 {what}: the answer carries no ETag"))
}

fn quote(version: &str) -> String {
    format!("\"{}\"", version.trim_matches('"'))
}

enum GetError {
    Request(anyhow::Error),
    Body(anyhow::Error),
}

/// GetObject of the whole object: its bytes and ETag; `None` when the key does not exist (a missing
/// bucket is an error).
pub(super) async fn get_versioned(cfg: Arc<Cfg>, key: String) -> anyhow::Result<Option<Versioned>> {
    let what = cfg.url(&key);
    let res = (|| async {
        let out = match cfg
            .client
            .get_object()
            .bucket(&cfg.bucket)
            .key(cfg.full(&key))
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let missing_key = status_of(&e) == Some(404)
                    && e.as_service_error().and_then(|s| s.code()) != Some("NoSuchBucket");
                if missing_key {
                    return Ok(None);
                }
                return Err(GetError::Request(s3_error("GetObject", &what, e)));
            }
        };
        let version =
            unquote(out.e_tag(), &format!("GetObject {what}")).map_err(GetError::Request)?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| GetError::Body(anyhow!("S3 GetObject {what}: the body broke off: {e}")))?
            .into_bytes();
        Ok(Some(Versioned { body, version }))
    })
    .retry(BODY_BACKOFF)
    .when(|e| matches!(e, GetError::Body(_)))
    .await;
    res.map_err(|e| match e {
        GetError::Request(e) | GetError::Body(e) => e,
    })
}

/// A PutObject of `data` at `key` with the store's encryption settings.
fn put(
    cfg: &Cfg,
    key: &str,
    data: &Bytes,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    let mut req = cfg
        .client
        .put_object()
        .bucket(&cfg.bucket)
        .key(cfg.full(key))
        .body(ByteStream::from(data.clone()));
    if let Some(s) = &cfg.sse {
        req = req.server_side_encryption(s.as_str().into());
    }
    if let Some(k) = &cfg.kms_key_id {
        req = req.ssekms_key_id(k);
    }
    req
}

/// Writes `data` at `key` unless something is there (PutObject with If-None-Match: *): the new ETag,
/// or `None` when something was.
pub(super) async fn create_if_absent(
    cfg: Arc<Cfg>,
    key: String,
    data: Bytes,
) -> anyhow::Result<Option<String>> {
    let what = cfg.url(&key);
    let created = (|| {
        let req = put(&cfg, &key, &data).if_none_match("*");
        async move {
            match req.send().await {
                Ok(out) => Ok(Some(out.e_tag().map(|e| e.trim_matches('"').to_string()))),
                Err(e) if status_of(&e) == Some(412) => Ok(None),
                Err(e) => Err(e),
            }
        }
    })
    .retry(CONDITIONAL_WRITE_BACKOFF)
    // 409 ConditionalRequestConflict: a concurrent conditional write; try again.
    .when(|e| status_of(e) == Some(409))
    .await
    .map_err(|e| s3_error("PutObject (If-None-Match)", &what, e))?;
    match created {
        Some(etag) => Ok(Some(unquote(
            etag.as_deref(),
            &format!("PutObject {what}"),
        )?)),
        None => Ok(None),
    }
}

/// Replaces `key` with `data` if its ETag is still `version` (PutObject with If-Match): the new ETag, or
/// `None` when the object changed (412) or is gone (404).
pub(super) async fn replace_if(
    cfg: Arc<Cfg>,
    key: String,
    data: Bytes,
    version: String,
) -> anyhow::Result<Option<String>> {
    let what = cfg.url(&key);
    let replaced = (|| {
        let req = put(&cfg, &key, &data).if_match(quote(&version));
        async move {
            match req.send().await {
                Ok(out) => Ok(Some(out.e_tag().map(|e| e.trim_matches('"').to_string()))),
                Err(e) if matches!(status_of(&e), Some(412) | Some(404)) => Ok(None),
                Err(e) => Err(e),
            }
        }
    })
    .retry(CONDITIONAL_WRITE_BACKOFF)
    .when(|e| status_of(e) == Some(409))
    .await
    .map_err(|e| s3_error("PutObject (If-Match)", &what, e))?;
    match replaced {
        Some(etag) => Ok(Some(unquote(
            etag.as_deref(),
            &format!("PutObject {what}"),
        )?)),
        None => Ok(None),
    }
}

/// Deletes `key` if its ETag is still `version` (DeleteObject with If-Match): true when that version is
/// gone (deleted, or already absent: 404), false when another is there (412).
pub(super) async fn delete_if(cfg: Arc<Cfg>, key: String, version: String) -> anyhow::Result<bool> {
    let what = cfg.url(&key);
    let res = (|| {
        let req = cfg
            .client
            .delete_object()
            .bucket(&cfg.bucket)
            .key(cfg.full(&key))
            .if_match(quote(&version));
        async move {
            match req.send().await {
                Ok(_) => Ok(true),
                Err(e) if status_of(&e) == Some(412) => Ok(false),
                Err(e) if status_of(&e) == Some(404) => Ok(true),
                Err(e) => Err(e),
            }
        }
    })
    .retry(CONDITIONAL_WRITE_BACKOFF)
    .when(|e| status_of(e) == Some(409))
    .await;
    res.map_err(|e| s3_error("DeleteObject (If-Match)", &what, e))
}
