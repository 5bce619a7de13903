//! `rewind.store`: one object-store interface, three backends (local files, S3, Azure Blob).
//!
//! A `Backend` moves bytes in Rust with bounded memory; the Lua module (`Store` userdata) only
//! orchestrates. Keys are relative to the store's prefix and always use `/`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Context, bail};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use mlua::{Lua, Table, UserData, UserDataMethods, Value};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::base::errors::{IntoLua, UsageError, lua_error};
use crate::base::stream::{BoxReader, BoxSink, Reader, Writer, reader_from_value};

pub mod azure;
pub mod local;
pub mod s3;

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
    /// Writes `data` at `key` only if nothing is there (atomic); false when it existed.
    fn create_if_absent(
        &self,
        key: &str,
        data: bytes::Bytes,
    ) -> BoxFuture<'static, anyhow::Result<bool>>;

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

/// The default store when `store.open()` gets nil: `REWIND_STORE`, else
/// `$XDG_DATA_HOME/rewind/store`, else `~/.local/share/rewind/store`.
pub fn default_url() -> String {
    if let Ok(u) = std::env::var("REWIND_STORE")
        && !u.trim().is_empty()
    {
        return u;
    }
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

/// Opens a store by URL.
pub async fn open(url: &str, opts: &OpenOpts) -> anyhow::Result<Arc<dyn Backend>> {
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

/// Compression applied by `put_cas`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn parse(s: Option<&str>) -> anyhow::Result<Compression> {
        Ok(match s.unwrap_or("none") {
            "none" | "" => Compression::None,
            "gzip" | "gz" => Compression::Gzip,
            "zstd" | "zst" => Compression::Zstd,
            other => bail!(UsageError(format!(
                "compression '{other}' is not one of none, gzip, zstd"
            ))),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Compresses a stream on a blocking thread; errors (of the input or the encoder) reach the reader.
pub fn compress_reader(input: BoxReader, c: Compression) -> BoxReader {
    if c == Compression::None {
        return input;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    crate::base::blocking::spawn_blocking(move || {
        struct ChanWrite(tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>);
        impl std::io::Write for ChanWrite {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed"))?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut src = tokio_util::io::SyncIoBridge::new(input);
        let out = std::io::BufWriter::with_capacity(256 * 1024, ChanWrite(tx.clone()));
        let res = (|| -> std::io::Result<()> {
            match c {
                Compression::Zstd => {
                    let mut enc = zstd::Encoder::new(out, 3)?;
                    std::io::copy(&mut src, &mut enc)?;
                    let mut w = enc.finish()?;
                    std::io::Write::flush(&mut w)?;
                }
                Compression::Gzip => {
                    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
                    std::io::copy(&mut src, &mut enc)?;
                    let mut w = enc.finish()?;
                    std::io::Write::flush(&mut w)?;
                }
                Compression::None => unreachable!(),
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Box::pin(tokio_util::io::StreamReader::new(stream))
}

/// The content-addressed key of a sha256 under `prefix`: `<prefix>/<aa>/<sha256>`.
pub fn cas_key(prefix: &str, sha: &str) -> String {
    join(prefix, &format!("{}/{}", &sha[..2], sha))
}

/// Hashes a reader while spooling it to a temporary file (bounded memory).
async fn spool_and_hash(
    mut reader: BoxReader,
) -> anyhow::Result<(tempfile::TempPath, String, u64)> {
    let tmp = crate::base::blocking::spawn_blocking(|| {
        tempfile::Builder::new().prefix(".rewind-cas-").tempfile()
    })
    .await??;
    let (file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).await.context("reading the input")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .await
            .context("writing a temporary spool file")?;
        size += n as u64;
    }
    file.flush().await?;
    Ok((path, hex::encode(hasher.finalize()), size))
}

/// Hashes a file by streaming it.
async fn hash_file(path: std::path::PathBuf) -> anyhow::Result<(String, u64)> {
    crate::base::blocking::spawn_blocking(move || -> anyhow::Result<(String, u64)> {
        let mut f =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut f, &mut hasher)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok((hex::encode(hasher.finalize()), size))
    })
    .await?
}

async fn open_file_reader(path: &std::path::Path) -> anyhow::Result<BoxReader> {
    let f = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Box::pin(tokio::io::BufReader::with_capacity(256 * 1024, f)))
}

/// `put_cas`: content-addressed put. Returns `{sha256, key, new, size, stored_size?, compression}`.
pub async fn put_cas(
    backend: Arc<dyn Backend>,
    input: CasInput,
    prefix: &str,
    compression: Compression,
) -> anyhow::Result<Map<String, Json>> {
    // Keep the spool file alive until the upload is done.
    let mut _spool = None;
    let (sha, size, source): (String, u64, CasSource) = match input {
        CasInput::Bytes(b) => {
            let sha = hex::encode(Sha256::digest(&b));
            let n = b.len() as u64;
            (sha, n, CasSource::Bytes(b))
        }
        CasInput::File(p) => {
            let (sha, n) = hash_file(p.clone()).await?;
            (sha, n, CasSource::File(p))
        }
        CasInput::Reader(r) => {
            let (tmp, sha, n) = spool_and_hash(r).await?;
            let p = tmp.to_path_buf();
            _spool = Some(tmp);
            (sha, n, CasSource::File(p))
        }
    };
    let key = cas_key(prefix, &sha);
    let mut out = Map::new();
    out.insert("sha256".into(), Json::String(sha.clone()));
    out.insert("key".into(), Json::String(key.clone()));
    out.insert("size".into(), Json::from(size));
    out.insert(
        "compression".into(),
        Json::String(compression.name().into()),
    );
    if backend.head(&key).await?.is_some() {
        out.insert("new".into(), Json::Bool(false));
        return Ok(out);
    }
    let reader: BoxReader = match source {
        CasSource::Bytes(b) => Box::pin(std::io::Cursor::new(b)),
        CasSource::File(p) => open_file_reader(&p).await?,
    };
    let info = backend
        .put(&key, compress_reader(reader, compression))
        .await?;
    if let Some(b) = info.get("bytes") {
        out.insert("stored_size".into(), b.clone());
    }
    out.insert("new".into(), Json::Bool(true));
    Ok(out)
}

pub enum CasInput {
    Bytes(Vec<u8>),
    File(std::path::PathBuf),
    Reader(BoxReader),
}

enum CasSource {
    Bytes(Vec<u8>),
    File(std::path::PathBuf),
}

/// Adds `key` to a sink's report, and counts bytes.
pub fn meta_json(m: &ObjectMeta) -> Json {
    let mut o = Map::new();
    o.insert("key".into(), Json::String(m.key.clone()));
    o.insert("size".into(), Json::from(m.size));
    if let Some(t) = m.mtime {
        o.insert("mtime".into(), Json::from(t));
    }
    if let Some(e) = &m.etag {
        o.insert("etag".into(), Json::String(e.clone()));
    }
    Json::Object(o)
}

/// The Lua handle of an open store.
pub struct Store {
    pub backend: Arc<dyn Backend>,
}

fn put_report(key: &str, info: &Map<String, Json>) -> Map<String, Json> {
    let mut o = Map::new();
    o.insert("key".into(), Json::String(key.to_string()));
    o.insert(
        "size".into(),
        info.get("bytes").cloned().unwrap_or(Json::from(0)),
    );
    if let Some(e) = info.get("etag") {
        o.insert("etag".into(), e.clone());
    }
    o
}

struct ListState {
    pages: Option<BoxStream<'static, anyhow::Result<Vec<ObjectMeta>>>>,
    buf: VecDeque<ObjectMeta>,
    done: bool,
}

impl UserData for Store {
    fn add_fields<F: mlua::UserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("url", |_, this| Ok(this.backend.url()));
    }

    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method(
            "put",
            |lua, this, (key, data, _opts): (String, Value, Option<Table>)| async move {
                check_key(&key).lua_err()?;
                let reader = reader_from_value(&data, "store:put")?;
                let info = this.backend.put(&key, reader).await.lua_err()?;
                crate::base::values::to_lua(&lua, &Json::Object(put_report(&key, &info)))
            },
        );
        m.add_async_method(
            "put_file",
            |lua, this, (key, path): (String, String)| async move {
                check_key(&key).lua_err()?;
                let reader = open_file_reader(std::path::Path::new(&path))
                    .await
                    .lua_err()?;
                let info = this.backend.put(&key, reader).await.lua_err()?;
                crate::base::values::to_lua(&lua, &Json::Object(put_report(&key, &info)))
            },
        );
        m.add_async_method("get", |lua, this, key: String| async move {
            check_key(&key).lua_err()?;
            let mut r = this
                .backend
                .reader(&key, Range::default())
                .await
                .lua_err()?;
            let mut buf = Vec::new();
            r.read_to_end(&mut buf)
                .await
                .with_context(|| format!("reading {}", key))
                .lua_err()?;
            lua.create_string(&buf)
        });
        m.add_async_method(
            "get_file",
            |lua, this, (key, path): (String, String)| async move {
                check_key(&key).lua_err()?;
                let r = this
                    .backend
                    .reader(&key, Range::default())
                    .await
                    .lua_err()?;
                let sink = crate::base::stream::FileSink::create(&path)
                    .await
                    .lua_err()?;
                let info = crate::base::stream::copy_into(r, Box::new(sink))
                    .await
                    .with_context(|| format!("downloading {key} to {path}"))
                    .lua_err()?;
                let mut o = Map::new();
                o.insert("key".into(), Json::String(key));
                o.insert("path".into(), Json::String(path));
                o.insert(
                    "size".into(),
                    info.get("bytes").cloned().unwrap_or(Json::from(0)),
                );
                crate::base::values::to_lua(&lua, &Json::Object(o))
            },
        );
        m.add_async_method(
            "reader",
            |_, this, (key, opts): (String, Option<Table>)| async move {
                check_key(&key).lua_err()?;
                let mut range = Range::default();
                if let Some(o) = opts {
                    range.offset = o.get::<Option<u64>>("offset")?.unwrap_or(0);
                    range.length = o.get::<Option<u64>>("length")?;
                }
                let r = this.backend.reader(&key, range).await.lua_err()?;
                let label = format!("{}/{}", this.backend.url().trim_end_matches('/'), key);
                Ok(Reader::new(label, r))
            },
        );
        m.add_async_method(
            "writer",
            |_, this, (key, _opts): (String, Option<Table>)| async move {
                check_key(&key).lua_err()?;
                let sink = this.backend.writer(&key).await.lua_err()?;
                let label = format!("{}/{}", this.backend.url().trim_end_matches('/'), key);
                Ok(Writer::new(label, sink))
            },
        );
        m.add_method("list", |lua, this, prefix: Option<String>| {
            let prefix = prefix.unwrap_or_default();
            check_prefix(&prefix).lua_err()?;
            let state = Rc::new(RefCell::new(ListState {
                pages: Some(this.backend.list(&prefix)),
                buf: VecDeque::new(),
                done: false,
            }));
            lua.create_async_function(move |lua, ()| {
                let state = state.clone();
                async move {
                    loop {
                        if let Some(m) = state.borrow_mut().buf.pop_front() {
                            return crate::base::values::to_lua(&lua, &meta_json(&m));
                        }
                        if state.borrow().done {
                            return Ok(Value::Nil);
                        }
                        let pages = state.borrow_mut().pages.take();
                        let Some(mut pages) = pages else {
                            return Err(mlua::Error::runtime(
                                "store list iterator used concurrently",
                            ));
                        };
                        let next = pages.next().await;
                        let mut st = state.borrow_mut();
                        st.pages = Some(pages);
                        match next {
                            None => st.done = true,
                            Some(Ok(page)) => st.buf.extend(page),
                            Some(Err(e)) => {
                                st.done = true;
                                return Err(lua_error(e));
                            }
                        }
                    }
                }
            })
        });
        m.add_async_method("head", |lua, this, key: String| async move {
            check_key(&key).lua_err()?;
            match this.backend.head(&key).await.lua_err()? {
                Some(m) => crate::base::values::to_lua(&lua, &meta_json(&m)),
                None => Ok(Value::Nil),
            }
        });
        m.add_async_method("exists", |_, this, key: String| async move {
            check_key(&key).lua_err()?;
            Ok(this.backend.head(&key).await.lua_err()?.is_some())
        });
        m.add_async_method("delete", |_, this, keys: Value| async move {
            let keys: Vec<String> = match keys {
                Value::String(s) => vec![s.to_str()?.to_string()],
                Value::Table(t) => t.sequence_values::<String>().collect::<mlua::Result<_>>()?,
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "store:delete: expected a key or a list of keys, got {}",
                        other.type_name()
                    )));
                }
            };
            for k in &keys {
                check_key(k).lua_err()?;
            }
            this.backend.delete(keys).await.lua_err()
        });
        m.add_async_method("copy", |_, this, (from, to): (String, String)| async move {
            check_key(&from).lua_err()?;
            check_key(&to).lua_err()?;
            this.backend.copy(&from, &to).await.lua_err()
        });
        m.add_async_method(
            "create_if_absent",
            |_, this, (key, data): (String, mlua::LuaString)| async move {
                check_key(&key).lua_err()?;
                let data = bytes::Bytes::copy_from_slice(&data.as_bytes());
                this.backend.create_if_absent(&key, data).await.lua_err()
            },
        );
        m.add_async_method(
            "put_cas",
            |lua, this, (input, opts): (Value, Option<Table>)| async move {
                let (prefix, compression) = match &opts {
                    Some(o) => (
                        o.get::<Option<String>>("prefix")?.unwrap_or_default(),
                        o.get::<Option<String>>("compression")?,
                    ),
                    None => (String::new(), None),
                };
                check_prefix(&prefix).lua_err()?;
                let compression = Compression::parse(compression.as_deref()).lua_err()?;
                let input = match &input {
                    Value::String(s) => CasInput::Bytes(s.as_bytes().to_vec()),
                    Value::Table(t) => match t.get::<Option<String>>("file")? {
                        Some(p) => CasInput::File(p.into()),
                        None => {
                            return Err(lua_error(
                                UsageError("store:put_cas: a table input needs file=path".into())
                                    .into(),
                            ));
                        }
                    },
                    other => CasInput::Reader(reader_from_value(other, "store:put_cas")?),
                };
                let out = put_cas(this.backend.clone(), input, &prefix, compression)
                    .await
                    .lua_err()?;
                crate::base::values::to_lua(&lua, &Json::Object(out))
            },
        );
        m.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!("store({})", this.backend.url()))
        });
    }
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "open",
        lua.create_async_function(
            |lua, (url, opts): (Option<String>, Option<Table>)| async move {
                let url = url.filter(|u| !u.is_empty()).unwrap_or_else(default_url);
                let opts = match opts {
                    Some(o) => match crate::base::values::from_lua(&lua, &Value::Table(o))? {
                        Json::Object(m) => m,
                        _ => Map::new(),
                    },
                    None => Map::new(),
                };
                let backend = open(&url, &opts).await.lua_err()?;
                Ok(Store { backend })
            },
        )?,
    )?;
    t.set(
        "default_url",
        lua.create_function(|_, ()| Ok(default_url()))?,
    )?;
    Ok(t)
}

/// Wraps a reader so that it yields at most `limit` bytes.
pub fn limit_reader<R: AsyncRead + Send + 'static>(r: R, limit: Option<u64>) -> BoxReader {
    match limit {
        Some(n) => Box::pin(r.take(n)),
        None => Box::pin(r),
    }
}
