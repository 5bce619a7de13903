//! `rewind.hash`: sha256 of strings, files and readers, streaming.
//!
//! sha2 detects the CPU's SHA extensions (SHA-NI on x86_64, SHA2 on aarch64) at run time, so hashing runs
//! at the speed of `sha256sum`. Besides one-shot functions this module gives two wrappers that hash what
//! passes through them: `HashReader` (optionally checking an expected size and sha256 at EOF) and
//! `HashSink` (adds `size` and `sha256` to what `close()` returns).

use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use anyhow::Context as _;
use futures::future::BoxFuture;
use mlua::{Lua, Table, UserData, UserDataMethods, Value};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::base::errors::IntoLua;
use crate::base::stream::{
    BoxReader, BoxSink, Reader, Sink, Writer, reader_from_value, sink_from_value,
};

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Hashes a file with large sequential reads (blocking; call from `spawn_blocking`).
pub fn sha256_file_blocking(path: &std::path::Path) -> anyhow::Result<(String, u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Hashes a reader to its end.
pub async fn sha256_reader(mut r: BoxReader) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// What a hashing wrapper has seen so far; `sha256` is set once the stream ended (unless the wrapper
/// only counts: `digest = false`), `done` too.
#[derive(Default, Debug, Clone)]
pub struct Digested {
    pub size: u64,
    pub sha256: Option<String>,
    pub done: bool,
}

pub type SharedDigest = Arc<Mutex<Digested>>;

/// A reader that hashes what passes through it. With `expect_*`, it fails at EOF (instead of returning
/// the end) when the size or the sha256 differ, so a consumer never mistakes corrupted data for a
/// complete stream.
pub struct HashReader {
    inner: BoxReader,
    /// None when only counting (`count_only`).
    hasher: Option<Sha256>,
    ended: bool,
    size: u64,
    expect_size: Option<u64>,
    expect_sha256: Option<String>,
    label: String,
    shared: SharedDigest,
}

impl HashReader {
    pub fn new(inner: BoxReader, label: impl Into<String>) -> (HashReader, SharedDigest) {
        let shared = SharedDigest::default();
        (
            HashReader {
                inner,
                hasher: Some(Sha256::new()),
                ended: false,
                size: 0,
                expect_size: None,
                expect_sha256: None,
                label: label.into(),
                shared: shared.clone(),
            },
            shared,
        )
    }

    /// Counts the size without hashing (what age already authenticates needs no sha256).
    pub fn count_only(mut self) -> HashReader {
        self.hasher = None;
        self
    }

    pub fn expect(mut self, size: Option<u64>, sha256: Option<String>) -> HashReader {
        self.expect_size = size;
        self.expect_sha256 = sha256.map(|s| s.to_ascii_lowercase());
        self
    }

    fn mismatch(&self, what: String) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is corrupt: {what}", self.label),
        )
    }
}

impl AsyncRead for HashReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.ended || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        std::task::ready!(this.inner.as_mut().poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            if let Some(h) = this.hasher.as_mut() {
                h.update(new);
            }
            this.size += new.len() as u64;
            this.shared.lock().unwrap().size = this.size;
            return Poll::Ready(Ok(()));
        }
        // End of stream: finalize and check.
        this.ended = true;
        let digest = this.hasher.take().map(|h| hex::encode(h.finalize()));
        {
            let mut s = this.shared.lock().unwrap();
            s.size = this.size;
            s.sha256.clone_from(&digest);
            s.done = true;
        }
        if let Some(exp) = this.expect_size
            && this.size != exp
        {
            return Poll::Ready(Err(
                this.mismatch(format!("{} bytes where {exp} were expected", this.size))
            ));
        }
        if let (Some(exp), Some(digest)) = (&this.expect_sha256, &digest)
            && digest != exp
        {
            return Poll::Ready(Err(
                this.mismatch(format!("sha256 {digest} where {exp} was expected"))
            ));
        }
        Poll::Ready(Ok(()))
    }
}

/// A sink that records size and sha256 of what is written and adds them to `finish`'s result.
pub struct HashSink {
    inner: BoxSink,
    /// None when only counting (`count_only`).
    hasher: Option<Sha256>,
    size: u64,
    shared: SharedDigest,
}

impl HashSink {
    pub fn new(inner: BoxSink) -> (HashSink, SharedDigest) {
        let shared = SharedDigest::default();
        (
            HashSink {
                inner,
                hasher: Some(Sha256::new()),
                size: 0,
                shared: shared.clone(),
            },
            shared,
        )
    }

    /// Counts the size without hashing (what age already authenticates needs no sha256).
    pub fn count_only(mut self) -> HashSink {
        self.hasher = None;
        self
    }
}

impl AsyncWrite for HashSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if let Some(h) = this.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        this.size += n as u64;
        Poll::Ready(Ok(n))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Sink for HashSink {
    fn write_piece(&mut self, piece: Vec<u8>) -> BoxFuture<'_, std::io::Result<()>> {
        if let Some(h) = self.hasher.as_mut() {
            h.update(&piece);
        }
        self.size += piece.len() as u64;
        self.inner.write_piece(piece)
    }
    fn finish(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>> {
        let this = *self;
        Box::pin(async move {
            let digest = this.hasher.map(|h| hex::encode(h.finalize()));
            let mut info = this.inner.finish().await?;
            {
                let mut s = this.shared.lock().unwrap();
                s.size = this.size;
                s.sha256.clone_from(&digest);
                s.done = true;
            }
            info.insert("size".into(), Json::from(this.size));
            if let Some(d) = digest {
                info.insert("sha256".into(), Json::String(d));
            }
            Ok(info)
        })
    }
    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        self.inner.abort()
    }
}

/// The Lua handle on a `HashReader`'s result: `d:sha256()` (nil until the end), `d:size()`.
pub struct DigestHandle(pub SharedDigest);

impl UserData for DigestHandle {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("sha256", |_, this, ()| {
            Ok(this.0.lock().unwrap().sha256.clone())
        });
        m.add_method("size", |_, this, ()| Ok(this.0.lock().unwrap().size));
        m.add_method("done", |_, this, ()| Ok(this.0.lock().unwrap().done));
    }
}

fn reader_label(v: &Value) -> String {
    match v {
        Value::UserData(ud) => ud
            .borrow::<Reader>()
            .map(|r| r.label.clone())
            .unwrap_or_else(|_| "reader".into()),
        _ => "string".into(),
    }
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    // sha256(string) → hex
    t.set(
        "sha256",
        lua.create_function(|_, s: mlua::LuaString| Ok(sha256_hex(&s.as_bytes())))?,
    )?;
    // sha256_file(path) → hex, size
    t.set(
        "sha256_file",
        lua.create_async_function(|_, path: String| async move {
            let (hex, size) = crate::base::blocking::spawn_blocking(move || {
                sha256_file_blocking(std::path::Path::new(&path))
            })
            .await
            .lua_err()?
            .lua_err()?;
            Ok((hex, size))
        })?,
    )?;
    // sha256_reader(reader) → hex, size (consumes the reader)
    t.set(
        "sha256_reader",
        lua.create_async_function(|_, v: Value| async move {
            let label = reader_label(&v);
            let r = reader_from_value(&v, "hash.sha256_reader")?;
            let (hex, size) = tokio::spawn(sha256_reader(r))
                .await
                .lua_err()?
                .with_context(|| format!("reading {label}"))
                .lua_err()?;
            Ok((hex, size))
        })?,
    )?;
    // reader(reader, {size=, sha256=, label=, digest=}) → reader, digest: hashes what passes through;
    // with expectations, the reader fails at EOF on a mismatch. digest=false: counts the size only.
    t.set(
        "reader",
        lua.create_function(|_, (v, opts): (Value, Option<Table>)| {
            let mut label = reader_label(&v);
            let r = reader_from_value(&v, "hash.reader")?;
            let (mut size, mut sha, mut digest) = (None, None, true);
            if let Some(o) = opts {
                size = o.get::<Option<u64>>("size")?;
                sha = o.get::<Option<String>>("sha256")?;
                if let Some(l) = o.get::<Option<String>>("label")? {
                    label = l;
                }
                digest = o.get::<Option<bool>>("digest")?.unwrap_or(true);
            }
            if !digest && sha.is_some() {
                return Err(mlua::Error::runtime(
                    "hash.reader: digest=false cannot check an expected sha256",
                ));
            }
            let (hr, shared) = HashReader::new(r, label.clone());
            let hr = if digest { hr } else { hr.count_only() };
            let hr = hr.expect(size, sha);
            Ok((Reader::new(label, Box::pin(hr)), DigestHandle(shared)))
        })?,
    )?;
    // writer(writer, {digest=}) → writer, digest: close() (by Lua or by the primitive that consumed
    // the writer) returns size and sha256 too, and the digest handle has them once the writer was
    // committed. digest=false: the size only.
    t.set(
        "writer",
        lua.create_function(|_, (v, opts): (Value, Option<Table>)| {
            let digest = match opts {
                Some(o) => o.get::<Option<bool>>("digest")?.unwrap_or(true),
                None => true,
            };
            let label = match &v {
                Value::UserData(ud) => ud
                    .borrow::<Writer>()
                    .map(|w| w.label.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let sink = sink_from_value(&v, "hash.writer")?;
            let (hs, shared) = HashSink::new(sink);
            let hs = if digest { hs } else { hs.count_only() };
            Ok((Writer::new(label, Box::new(hs)), DigestHandle(shared)))
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn hash_reader_checks_at_eof() {
        let data = b"hello world".to_vec();
        let good = sha256_hex(&data);
        let (r, d) = HashReader::new(Box::pin(std::io::Cursor::new(data.clone())), "x");
        let mut r = r.expect(Some(11), Some(good.clone()));
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(d.lock().unwrap().sha256.as_deref(), Some(good.as_str()));
        let (r, _) = HashReader::new(Box::pin(std::io::Cursor::new(data.clone())), "x");
        let mut r = r.expect(None, Some("00".repeat(32)));
        let err = r.read_to_end(&mut out).await.unwrap_err();
        assert!(err.to_string().contains("x is corrupt"), "{err}");
        let (r, _) = HashReader::new(Box::pin(std::io::Cursor::new(data)), "x");
        let mut r = r.expect(Some(10), None);
        assert!(r.read_to_end(&mut out).await.is_err());
    }

    #[tokio::test]
    async fn count_only_wrappers_check_the_size_and_report_no_sha256() {
        let data = b"hello world".to_vec();
        let (r, d) = HashReader::new(Box::pin(std::io::Cursor::new(data.clone())), "x");
        let mut r = r.count_only().expect(Some(11), None);
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        let seen = d.lock().unwrap().clone();
        assert_eq!((seen.size, seen.sha256, seen.done), (11, None, true));
        let (r, _) = HashReader::new(Box::pin(std::io::Cursor::new(data.clone())), "x");
        let err = r
            .count_only()
            .expect(Some(12), None)
            .read_to_end(&mut out)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("11 bytes where 12"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = crate::base::stream::FileSink::create(dir.path().join("f"))
            .await
            .unwrap();
        let (hs, d) = HashSink::new(Box::new(file));
        let mut hs = Box::new(hs.count_only());
        hs.write_all(&data).await.unwrap();
        assert!(!d.lock().unwrap().done, "not done before it is committed");
        let info = hs.finish().await.unwrap();
        assert_eq!(info["size"], 11);
        assert!(info.get("sha256").is_none(), "{info:?}");
        let seen = d.lock().unwrap().clone();
        assert_eq!((seen.size, seen.sha256, seen.done), (11, None, true));
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), data);
    }
}
