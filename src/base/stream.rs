//! Readers and writers that cross the Lua boundary as userdata.
//!
//! Bytes do not pass through Lua on the fast paths: a primitive hands out a `Reader` or `Writer` and
//! another primitive takes it over (`take`) and streams in Rust. Lua can still read or write small
//! amounts directly (`r:read(n)`, `w:write(s)`), which is the slow, explicit path.

use std::cell::RefCell;
use std::pin::Pin;

use futures::future::BoxFuture;
use mlua::{UserData, UserDataMethods, Value};
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::base::errors::lua_error;

pub type BoxReader = Pin<Box<dyn AsyncRead + Send>>;

/// Where a writer's bytes end up. `finish` makes them visible (rename, multipart complete); `abort`
/// guarantees that nothing partial is left behind.
pub trait Sink: AsyncWrite + Send + Unpin {
    fn finish(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>>;
    fn abort(self: Box<Self>) -> BoxFuture<'static, ()>;
    /// Writes a whole owned buffer. A sink that hands buffers on (to a writer thread, an encryptor)
    /// takes it as it is instead of copying it; the default copies it in, like `write_all`.
    fn write_piece(&mut self, piece: Vec<u8>) -> BoxFuture<'_, std::io::Result<()>> {
        Box::pin(async move {
            self.write_all(&piece).await?;
            crate::base::pipeline::pieces().give(piece);
            Ok(())
        })
    }
}

pub type BoxSink = Box<dyn Sink>;

/// A readable stream handed to Lua. It can be consumed once, by Lua or by another primitive.
pub struct Reader {
    inner: RefCell<Option<BoxReader>>,
    /// What the reader reads, for error messages ("s3://bucket/key", "pg_dump stdout").
    pub label: String,
}

impl Reader {
    pub fn new(label: impl Into<String>, inner: BoxReader) -> Self {
        Reader {
            inner: RefCell::new(Some(inner)),
            label: label.into(),
        }
    }

    /// Takes the stream out for a primitive to consume; a second take is an error.
    pub fn take(&self) -> mlua::Result<BoxReader> {
        self.inner.borrow_mut().take().ok_or_else(|| {
            mlua::Error::runtime(format!("reader {} was already consumed", self.label))
        })
    }
}

impl UserData for Reader {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // read(n): up to n bytes (default 64 KiB); nil at the end.
        m.add_async_method("read", |lua, this, n: Option<usize>| async move {
            let mut r = this.take()?;
            let mut buf = vec![0u8; n.unwrap_or(64 * 1024).max(1)];
            let got = r.read(&mut buf).await.map_err(|e| {
                lua_error(anyhow::Error::new(e).context(format!("reading {}", this.label)))
            })?;
            *this.inner.borrow_mut() = Some(r);
            if got == 0 {
                return Ok(Value::Nil);
            }
            Ok(Value::String(lua.create_string(&buf[..got])?))
        });
        // read_all(): the rest of the stream as a string. For small streams only.
        m.add_async_method("read_all", |lua, this, ()| async move {
            let mut r = this.take()?;
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).await.map_err(|e| {
                lua_error(anyhow::Error::new(e).context(format!("reading {}", this.label)))
            })?;
            lua.create_string(&buf)
        });
        m.add_method("close", |_, this, ()| {
            this.inner.borrow_mut().take();
            Ok(())
        });
        m.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!("reader({})", this.label))
        });
    }
}

/// A writable stream handed to Lua. `close()` commits it; dropping it uncommitted aborts it.
pub struct Writer {
    inner: RefCell<Option<BoxSink>>,
    pub label: String,
}

impl Writer {
    pub fn new(label: impl Into<String>, sink: BoxSink) -> Self {
        Writer {
            inner: RefCell::new(Some(sink)),
            label: label.into(),
        }
    }

    pub fn take(&self) -> mlua::Result<BoxSink> {
        self.inner.borrow_mut().take().ok_or_else(|| {
            mlua::Error::runtime(format!(
                "writer {} was already closed or consumed",
                self.label
            ))
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(sink) = self.inner.get_mut().take() {
            // Never leave a partial object: an uncommitted writer is aborted.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let task = handle.spawn(sink.abort());
                track_cleanup(async move {
                    let _ = task.await;
                });
            }
        }
    }
}

/// Background cleanups (aborting uploads of dropped writers) that must finish before the process exits:
/// a runtime shutting down would cancel them half-way and leave partial uploads behind.
static CLEANUPS: std::sync::Mutex<Vec<BoxFuture<'static, ()>>> = std::sync::Mutex::new(Vec::new());

/// Registers a cleanup that `wait_cleanups` waits for.
pub fn track_cleanup(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    CLEANUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::pin(fut));
}

/// Waits (at most `limit`) for every registered cleanup; called before the runtime shuts down.
pub async fn wait_cleanups(limit: std::time::Duration) {
    let pending: Vec<_> = std::mem::take(&mut *CLEANUPS.lock().unwrap_or_else(|e| e.into_inner()));
    if pending.is_empty() {
        return;
    }
    if tokio::time::timeout(limit, futures::future::join_all(pending))
        .await
        .is_err()
    {
        tracing::warn!(
            "gave up waiting for background cleanups (aborting uploads) after {limit:?}"
        );
    }
}

impl UserData for Writer {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method("write", |_, this, data: mlua::LuaString| async move {
            let mut w = this.take()?;
            let res = w.write_all(&data.as_bytes()).await;
            *this.inner.borrow_mut() = Some(w);
            res.map_err(|e| {
                lua_error(anyhow::Error::new(e).context(format!("writing {}", this.label)))
            })
        });
        // close(): flushes and commits; returns what the sink reports (bytes, sha256, key, ...).
        m.add_async_method("close", |lua, this, ()| async move {
            let w = this.take()?;
            let info = finish(w)
                .await
                .map_err(|e| lua_error(e.context(format!("closing {}", this.label))))?;
            crate::base::values::to_lua(&lua, &Json::Object(info))
        });
        m.add_async_method("abort", |_, this, ()| async move {
            if let Ok(w) = this.take() {
                w.abort().await;
            }
            Ok(())
        });
        m.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!("writer({})", this.label))
        });
    }
}

/// Flushes and commits a sink.
pub async fn finish(mut sink: BoxSink) -> anyhow::Result<Map<String, Json>> {
    if let Err(e) = sink.shutdown().await {
        sink.abort().await;
        return Err(e.into());
    }
    sink.finish().await
}

/// Copies a reader into a sink and commits it; on any error the sink is aborted.
pub async fn copy_into(
    mut reader: BoxReader,
    mut sink: BoxSink,
) -> anyhow::Result<Map<String, Json>> {
    match tokio::io::copy_buf(
        &mut tokio::io::BufReader::with_capacity(256 * 1024, &mut reader),
        &mut sink,
    )
    .await
    {
        Ok(_) => finish(sink).await,
        Err(e) => {
            sink.abort().await;
            Err(e.into())
        }
    }
}

/// Accepts either a Reader userdata or a string (wrapped as an in-memory reader).
pub fn reader_from_value(v: &Value, what: &str) -> mlua::Result<BoxReader> {
    match v {
        Value::UserData(ud) => {
            let r = ud
                .borrow::<Reader>()
                .map_err(|_| mlua::Error::runtime(format!("{what}: expected a reader")))?;
            r.take()
        }
        Value::String(s) => Ok(Box::pin(std::io::Cursor::new(s.as_bytes().to_vec()))),
        other => Err(mlua::Error::runtime(format!(
            "{what}: expected a reader or a string, got {}",
            other.type_name()
        ))),
    }
}

/// Takes the sink out of a Writer userdata.
pub fn sink_from_value(v: &Value, what: &str) -> mlua::Result<BoxSink> {
    match v {
        Value::UserData(ud) => {
            let w = ud
                .borrow::<Writer>()
                .map_err(|_| mlua::Error::runtime(format!("{what}: expected a writer")))?;
            w.take()
        }
        other => Err(mlua::Error::runtime(format!(
            "{what}: expected a writer, got {}",
            other.type_name()
        ))),
    }
}

pub use super::file_sink::FileSink;

/// The reading end of a chunk channel: a `Read` over chunks another thread produces (decompression
/// overlapping with parsing and writing, like two processes joined by a pipe). The channel closing ends
/// the stream; an `Err` chunk is returned as a read error.
pub struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    pub fn new(rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>) -> ChannelReader {
        ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c?;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl std::io::BufRead for ChannelReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c?;
                    self.pos = 0;
                }
                Err(_) => return Ok(&[]),
            }
        }
        Ok(&self.cur[self.pos..])
    }
    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.cur.len());
    }
}

/// Reads `input` on its own thread, `chunk` bytes at a time with at most `depth` chunks waiting, and
/// returns the reading end. The thread stops when the input ends, fails, or the reader is dropped.
pub fn read_ahead<R: std::io::Read + Send + 'static>(
    mut input: R,
    chunk: usize,
    depth: usize,
) -> ChannelReader {
    let (tx, rx) = std::sync::mpsc::sync_channel(depth);
    let handle = tokio::runtime::Handle::try_current().ok();
    std::thread::spawn(move || {
        // Inputs bridged from async readers need the runtime's context.
        let _g = handle.as_ref().map(|h| h.enter());
        loop {
            let mut buf = vec![0u8; chunk];
            let mut filled = 0;
            while filled < chunk {
                match input.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            if tx.send(Ok(buf)).is_err() {
                return;
            }
        }
    });
    ChannelReader::new(rx)
}
