//! Conditional requests on Azure Blob Storage, the ground of leases: a GET that returns the body and its
//! ETag, Put Blob with `If-None-Match: *` (create) or `If-Match: <etag>` (compare-and-swap), through
//! object_store's `PutMode::Create` and `PutMode::Update`.
//!
//! `delete_if` is a read of the ETag followed by a delete: object_store 0.14 sends no condition with a
//! delete (its deletes are Blob Batch requests). The gap is one round trip; `rewind.lock` only deletes a
//! lease that is still in force, which no other job may take over meanwhile.

use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};

use super::{Cfg, az_error, check_container};
use crate::prims::storage::Versioned;

fn unquote(e: Option<&str>) -> Option<String> {
    e.map(|e| e.trim_matches('"').to_string())
}

pub(super) async fn get_versioned(cfg: Arc<Cfg>, key: String) -> anyhow::Result<Option<Versioned>> {
    let what = cfg.url(&key);
    let res = match cfg.store.get(&cfg.path(&key)).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => {
            check_container(&cfg, &key, "GetBlob").await?;
            return Ok(None);
        }
        Err(e) => return Err(az_error("GetBlob", &what, e)),
    };
    let version = unquote(res.meta.e_tag.as_deref())
        .ok_or_else(|| anyhow::anyhow!("Azure GetBlob {what}: the answer carries no ETag"))?;
    let body = res
        .bytes()
        .await
        .map_err(|e| az_error("GetBlob", &what, e))?;
    Ok(Some(Versioned { body, version }))
}

pub(super) async fn create_if_absent(
    cfg: Arc<Cfg>,
    key: String,
    data: Bytes,
) -> anyhow::Result<Option<String>> {
    let what = cfg.url(&key);
    let res = cfg
        .store
        .put_opts(
            &cfg.path(&key),
            PutPayload::from(data),
            PutMode::Create.into(),
        )
        .await;
    match res {
        Ok(r) => unquote(r.e_tag.as_deref())
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("Azure PutBlob {what}: the answer carries no ETag")),
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => Ok(None),
        Err(e) => Err(az_error("PutBlob (If-None-Match)", &what, e)),
    }
}

pub(super) async fn replace_if(
    cfg: Arc<Cfg>,
    key: String,
    data: Bytes,
    version: String,
) -> anyhow::Result<Option<String>> {
    let what = cfg.url(&key);
    let mode = PutMode::Update(UpdateVersion {
        e_tag: Some(format!("\"{}\"", version.trim_matches('"'))),
        version: None,
    });
    let res = cfg
        .store
        .put_opts(&cfg.path(&key), PutPayload::from(data), mode.into())
        .await;
    match res {
        Ok(r) => unquote(r.e_tag.as_deref())
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("Azure PutBlob {what}: the answer carries no ETag")),
        Err(object_store::Error::Precondition { .. })
        | Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(az_error("PutBlob (If-Match)", &what, e)),
    }
}

pub(super) async fn delete_if(cfg: Arc<Cfg>, key: String, version: String) -> anyhow::Result<bool> {
    let what = cfg.url(&key);
    let path = cfg.path(&key);
    match cfg.store.head(&path).await {
        Ok(m) if unquote(m.e_tag.as_deref()).as_deref() == Some(version.trim_matches('"')) => {}
        Ok(_) => return Ok(false),
        Err(object_store::Error::NotFound { .. }) => return Ok(true),
        Err(e) => return Err(az_error("GetBlobProperties", &what, e)),
    }
    match cfg.store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
        Err(e) => Err(az_error("DeleteBlob", &what, e)),
    }
}
