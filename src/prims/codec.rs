//! `rewind.codec`: streaming compression. A reader goes in, a reader comes out; the work runs on a
//! blocking thread with a small bounded channel between, so memory stays flat however large the
//! stream (a database dump piped from `mariadb-dump` into the store, say). Errors of the input or of
//! the codec reach whoever reads the output.

use std::io::{BufRead, Read, Write};

use anyhow::bail;
use mlua::{Lua, Table, Value};

use crate::base::errors::{IntoLua, UsageError};
use crate::base::stream::{BoxReader, ChannelReader, Reader, read_ahead, reader_from_value};

/// A stream codec.
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
    /// The usual file extension ("zst", "gz"), empty for none.
    pub fn ext(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }
}

/// Settings of one compression: level (codec default when None) and zstd worker threads (0: none).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub codec: Compression,
    pub level: Option<i32>,
    pub workers: u32,
}

impl Settings {
    pub fn new(codec: Compression) -> Settings {
        Settings {
            codec,
            level: None,
            workers: 0,
        }
    }
}

type Chunks = tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>;

/// A `Write` that hands each buffer to the async side; a dropped reader ends the work (broken pipe).
struct ChanWrite(Chunks);

impl Write for ChanWrite {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "reader closed"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `work(input, output)` on a blocking thread and returns the output as a reader.
fn pipe_through<F>(input: BoxReader, work: F) -> BoxReader
where
    F: FnOnce(&mut ChannelReader, &mut dyn Write) -> std::io::Result<()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    crate::base::blocking::spawn_blocking(move || {
        // Reading runs on its own thread, a few chunks ahead, so a producer writing into a pipe (a
        // database dump) never waits while this thread compresses.
        let mut src = read_ahead(tokio_util::io::SyncIoBridge::new(input), 256 * 1024, 8);
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, ChanWrite(tx.clone()));
        let res = work(&mut src, &mut out).and_then(|_| out.flush());
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Box::pin(tokio_util::io::StreamReader::new(stream))
}

/// Feeds every chunk of `src` to `dst` as it arrived (256 KiB), not in `io::copy`'s 8 KiB pieces:
/// one call into the codec per chunk and no copy in between.
fn feed(src: &mut ChannelReader, dst: &mut impl Write) -> std::io::Result<()> {
    loop {
        let chunk = src.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        let n = chunk.len();
        dst.write_all(chunk)?;
        src.consume(n);
    }
}

/// Copies a decoder's output in large pieces.
fn drain(src: &mut impl Read, dst: &mut dyn Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => dst.write_all(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Compresses a stream.
pub fn compress(input: BoxReader, s: Settings) -> BoxReader {
    match s.codec {
        Compression::None => input,
        Compression::Zstd => pipe_through(input, move |src, out| {
            let mut enc = zstd::Encoder::new(out, s.level.unwrap_or(3))?;
            if s.workers > 0 {
                enc.multithread(s.workers)?;
            }
            feed(src, &mut enc)?;
            enc.finish()?;
            Ok(())
        }),
        Compression::Gzip => pipe_through(input, move |src, out| {
            let level = s.level.unwrap_or(6).clamp(0, 9) as u32;
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            feed(src, &mut enc)?;
            enc.finish()?;
            Ok(())
        }),
    }
}

/// Decompresses a stream; a damaged or truncated stream is an error at the reader, not silent data.
pub fn decompress(input: BoxReader, c: Compression) -> BoxReader {
    match c {
        Compression::None => input,
        Compression::Zstd => pipe_through(input, |src, out| {
            let mut dec = zstd::Decoder::with_buffer(src)?;
            drain(&mut dec, out)?;
            Ok(())
        }),
        Compression::Gzip => pipe_through(input, |src, out| {
            let mut dec = flate2::bufread::MultiGzDecoder::new(src);
            drain(&mut dec, out)?;
            Ok(())
        }),
    }
}

fn label_of(v: &Value) -> String {
    match v {
        Value::UserData(ud) => ud
            .borrow::<Reader>()
            .map(|r| r.label.clone())
            .unwrap_or_else(|_| "stream".into()),
        _ => "string".into(),
    }
}

fn opt<T: mlua::FromLua>(opts: &Option<Table>, key: &str) -> mlua::Result<Option<T>> {
    match opts {
        Some(t) => t.get(key),
        None => Ok(None),
    }
}

/// The `codec` option of a call (default zstd).
fn codec_opt(opts: &Option<Table>) -> mlua::Result<Compression> {
    Compression::parse(Some(
        opt::<String>(opts, "codec")?.as_deref().unwrap_or("zstd"),
    ))
    .lua_err()
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    // compress(reader|string, {codec = "zstd"|"gzip"|"none", level = n, workers = n}) → Reader
    t.set(
        "compress",
        lua.create_function(|_, (v, opts): (Value, Option<Table>)| {
            let codec = codec_opt(&opts)?;
            let settings = Settings {
                codec,
                level: opt(&opts, "level")?,
                workers: opt(&opts, "workers")?.unwrap_or(0),
            };
            let label = format!("{} ({})", label_of(&v), codec.name());
            let input = reader_from_value(&v, "codec.compress")?;
            Ok(Reader::new(label, compress(input, settings)))
        })?,
    )?;
    // decompress(reader|string, {codec = "zstd"|"gzip"|"none"}) → Reader
    t.set(
        "decompress",
        lua.create_function(|_, (v, opts): (Value, Option<Table>)| {
            let codec = codec_opt(&opts)?;
            let label = format!("{} (decompressed)", label_of(&v));
            let input = reader_from_value(&v, "codec.decompress")?;
            Ok(Reader::new(label, decompress(input, codec)))
        })?,
    )?;
    // ext(codec) → "zst" | "gz" | ""
    t.set(
        "ext",
        lua.create_function(|_, c: Option<String>| {
            Ok(Compression::parse(c.as_deref()).lua_err()?.ext())
        })?,
    )?;
    Ok(t)
}
