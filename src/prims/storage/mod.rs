//! `rewind.store`: one object-store interface, three backends (local files, S3, Azure Blob).
//!
//! A `Backend` moves bytes in Rust with bounded memory; the Lua module (`Store` userdata) only
//! orchestrates. Keys are relative to the store's prefix and always use `/`.
//!
//! Here: the `Backend` trait, key checks, options and `open`. `lua`: the `Store` userdata and the
//! module table. `cas`: content-addressed puts. `local`, `s3`, `azure`: the backends.

use std::sync::Arc;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::base::errors::UsageError;
use crate::base::stream::{BoxReader, BoxSink};

pub mod azure;
mod cas;
pub mod encrypted;
pub mod local;
mod lua;
pub mod s3;

pub use cas::{CasInput, CasTarget, Compression, cas_key, put_cas, put_cas_known};
pub use lua::{Store, meta_json, module};

/// What `list` and `head` report about one object.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    /// Relative to the store's prefix.
    pub key: String,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: Option<f64>,
    pub etag: Option<String>,
}

/// An object's bytes and its version: an opaque tag that changes with every write of the key (the S3
/// or Azure ETag without quotes; the local store's sha256 of the content). Conditional writes take it.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub body: bytes::Bytes,
    pub version: String,
}

/// What `leftovers` found (and removed, when asked): temp files of killed writers.
#[derive(Debug, Clone, Default)]
pub struct Leftovers {
    /// Keys relative to the store, the temp file's own name last.
    pub keys: Vec<String>,
    pub bytes: u64,
}

/// A byte range of an object: from `offset`, `length` bytes (to the end when `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub offset: u64,
    pub length: Option<u64>,
}

/// One store. Every method takes keys relative to the store's prefix.
pub trait Backend: Send + Sync {
    /// The store's URL, without secrets.
    fn url(&self) -> String;
    /// Whether what is written is age-encrypted (and so authenticated: see `encrypted`).
    fn encrypted(&self) -> bool {
        false
    }
    /// A sink that writes `key`; nothing is visible until `finish`, and `abort` leaves nothing.
    /// The sink's `finish` reports `{key, bytes, etag}`.
    fn writer(&self, key: &str) -> BoxFuture<'static, anyhow::Result<BoxSink>>;
    /// Streams an object (or a range of it). A missing object is an error naming it.
    fn reader(&self, key: &str, range: Range) -> BoxFuture<'static, anyhow::Result<BoxReader>>;
    /// Pages of objects whose keys start with `prefix`, in key order, fetched lazily.
    fn list(&self, prefix: &str) -> BoxStream<'static, anyhow::Result<Vec<ObjectMeta>>>;
    /// Metadata of one object, `None` when it does not exist.
    fn head(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<ObjectMeta>>>;
    /// Deletes objects (missing ones are not an error); returns how many requests succeeded.
    fn delete(&self, keys: Vec<String>) -> BoxFuture<'static, anyhow::Result<usize>>;
    /// Server-side copy when the backend has one.
    fn copy(&self, from: &str, to: &str) -> BoxFuture<'static, anyhow::Result<()>>;
    /// The whole object and its version, `None` when it does not exist (any other failure is an
    /// error, never "absent"). For small objects (leases, manifests): the body is read into memory.
    fn get_versioned(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<Versioned>>>;
    /// Writes `data` at `key` only if nothing is there (atomic): `Some(version)` when it was created,
    /// `None` when an object existed.
    fn create_if_absent(
        &self,
        key: &str,
        data: bytes::Bytes,
    ) -> BoxFuture<'static, anyhow::Result<Option<String>>>;
    /// Replaces `key` with `data` only if its version is still `version` (atomic compare-and-swap):
    /// `Some(new version)`, or `None` when the object changed or is gone.
    fn replace_if(
        &self,
        key: &str,
        data: bytes::Bytes,
        version: &str,
    ) -> BoxFuture<'static, anyhow::Result<Option<String>>>;
    /// Deletes `key` only if its version is still `version`: true when that version is gone (deleted
    /// now, or already absent), false when another version is there (it is left alone).
    fn delete_if(&self, key: &str, version: &str) -> BoxFuture<'static, anyhow::Result<bool>>;
    /// Temporary files that writers killed mid-write left under `prefix`, last modified more than
    /// `older_than` ago; removed when `remove`. Only the local store has them (S3 and Azure uploads are
    /// invisible until complete, and an abandoned one is cleaned up by the service).
    fn leftovers(
        &self,
        prefix: &str,
        older_than: std::time::Duration,
        remove: bool,
    ) -> BoxFuture<'static, anyhow::Result<Leftovers>> {
        let _ = (prefix, older_than, remove);
        Box::pin(async { Ok(Leftovers::default()) })
    }

    /// Streams `reader` into `key`; on any error nothing is left behind.
    fn put(
        &self,
        key: &str,
        reader: BoxReader,
    ) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>> {
        let sink = self.writer(key);
        Box::pin(async move { crate::base::stream::copy_into(reader, sink.await?).await })
    }
}

/// Checks a key: relative, `/`-separated, no `.`/`..`/empty components, no NUL.
pub fn check_key(key: &str) -> anyhow::Result<()> {
    if key.is_empty() {
        bail!(UsageError("store key is empty".into()));
    }
    if key.starts_with('/') {
        bail!(UsageError(format!(
            "store key '{key}' is absolute; keys are relative to the store"
        )));
    }
    if key.contains('\0') {
        bail!(UsageError(format!("store key {key:?} contains a NUL byte")));
    }
    for c in key.split('/') {
        if c == ".." || c == "." {
            bail!(UsageError(format!(
                "store key '{key}' contains '{c}'; keys may not leave the store"
            )));
        }
        if c.is_empty() && !key.ends_with('/') {
            bail!(UsageError(format!(
                "store key '{key}' has an empty component"
            )));
        }
    }
    if key.ends_with('/') {
        bail!(UsageError(format!("store key '{key}' ends with '/'")));
    }
    Ok(())
}

/// Checks a list prefix: like a key, but it may be empty or end with `/`.
pub fn check_prefix(prefix: &str) -> anyhow::Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_key(prefix.trim_end_matches('/')).or_else(|e| {
        if prefix.trim_end_matches('/').is_empty() {
            bail!(UsageError(format!("list prefix '{prefix}' is not valid")))
        } else {
            Err(e)
        }
    })
}

/// Joins a store prefix and a key.
pub fn join(prefix: &str, key: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        key.to_string()
    } else if key.is_empty() {
        format!("{p}/")
    } else {
        format!("{p}/{key}")
    }
}

/// The config file's `store`, set once by the command line before any script runs.
static CONFIGURED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes `url` the default store when `REWIND_STORE` is not set (the config file's `store`).
pub fn set_configured_default(url: &str) {
    let _ = CONFIGURED.set(url.to_string());
}

/// The default store when `store.open()` gets nil: `REWIND_STORE`, else the config file's `store`,
/// else the local store (`local_default`).
pub fn default_url() -> String {
    if let Ok(u) = std::env::var("REWIND_STORE")
        && !u.trim().is_empty()
    {
        return u;
    }
    if let Some(u) = CONFIGURED.get() {
        return u.clone();
    }
    local_default()
}

/// The built-in default store: `$XDG_DATA_HOME/rewind/store`, else `~/.local/share/rewind/store`.
pub fn local_default() -> String {
    let base = std::env::var("XDG_DATA_HOME")
        .ok()
        .filter(|s| !s.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
            std::path::Path::new(&home).join(".local/share")
        });
    base.join("rewind/store").display().to_string()
}

/// Options for `store.open`, as a JSON map (strings, numbers, booleans).
pub type OpenOpts = Map<String, Json>;

pub fn opt_str(opts: &OpenOpts, name: &str) -> Option<String> {
    match opts.get(name) {
        Some(Json::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Json::Number(n)) => Some(n.to_string()),
        Some(Json::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

pub fn opt_bool(opts: &OpenOpts, name: &str) -> Option<bool> {
    match opts.get(name) {
        Some(Json::Bool(b)) => Some(*b),
        Some(Json::String(s)) => Some(matches!(s.as_str(), "true" | "1" | "yes")),
        _ => None,
    }
}

pub fn opt_u64(opts: &OpenOpts, name: &str) -> Option<u64> {
    match opts.get(name) {
        Some(Json::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Some(Json::String(s)) => s.parse().ok(),
        _ => None,
    }
}

/// Opens a store by URL: encrypted with age when `opts` (`recipients`, `identity`, `passphrase`) or
/// the environment (`REWIND_RECIPIENTS`, `REWIND_IDENTITY`, `REWIND_PASSPHRASE`) give keys (see
/// `encrypted`).
pub async fn open(url: &str, opts: &OpenOpts) -> anyhow::Result<Arc<dyn Backend>> {
    let inner = open_plain(url, opts).await?;
    encrypted::wrap(inner, opts)
}

/// Opens a store by URL, without encryption.
pub async fn open_plain(url: &str, opts: &OpenOpts) -> anyhow::Result<Arc<dyn Backend>> {
    if let Some(rest) = url.strip_prefix("s3://") {
        return Ok(Arc::new(s3::S3Backend::open(rest, opts).await?));
    }
    if let Some(rest) = url
        .strip_prefix("az://")
        .or_else(|| url.strip_prefix("azure://"))
    {
        return Ok(Arc::new(azure::AzureBackend::open(rest, opts)?));
    }
    if let Some(scheme) = url.split_once("://").map(|(s, _)| s)
        && scheme != "file"
    {
        bail!(UsageError(format!(
            "store URL '{}': unknown scheme '{scheme}' (use file://, s3:// or az://)",
            crate::base::redact::redact_url(url)
        )));
    }
    Ok(Arc::new(local::LocalBackend::open(url)?))
}

/// Wraps a reader so that it yields at most `limit` bytes.
pub fn limit_reader<R: AsyncRead + Send + 'static>(r: R, limit: Option<u64>) -> BoxReader {
    match limit {
        Some(n) => Box::pin(r.take(n)),
        None => Box::pin(r),
    }
}

/// Opens a file for `put_file` and `put_cas`, buffered.
async fn open_file_reader(path: &std::path::Path) -> anyhow::Result<BoxReader> {
    let f = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Box::pin(tokio::io::BufReader::with_capacity(256 * 1024, f)))
}
