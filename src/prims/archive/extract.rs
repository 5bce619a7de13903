//! Extracting and listing tar streams safely.
//!
//! Two blocking threads: one reads the (async) input and decompresses, one parses tar and writes files
//! (`unpack.rs`), connected by a small bounded channel, so decompression and file writes overlap like
//! `zstd -d | tar -x`. A stream that ends early (inside an entry, or without the end-of-archive marker)
//! is an error that says the archive is truncated.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};

use anyhow::Context;

use super::create::{CHUNK, Compression};
use crate::base::stream::{BoxReader, ChannelReader};
use crate::prims::progress::{Counter, Progress};

/// An entry the archive may not contain; the message names it.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refused {}

#[derive(Default, Debug, Clone)]
pub struct ExtractStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub bytes: u64,
    pub compressed_bytes: u64,
    /// Symlinks whose target leads outside the destination (decided lexically), restored as they are.
    pub symlinks_outside: u64,
    /// The first of those, as (path, target).
    pub outside: Vec<(String, String)>,
}

/// What to do with a symlink whose target leads outside the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Restore it as it is (as tar and restic do); it is counted and named in the stats.
    Keep,
    /// Refuse the archive.
    Inside,
}

/// A reader that remembers whether it reached the end of its input (a tar reader that stops at the end of
/// the stream instead of at the end-of-archive marker has read a truncated archive).
pub struct Tracked<R> {
    inner: R,
    eof: Arc<AtomicBool>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }
}

pub type TarReader = tar::Archive<Tracked<ChannelReader>>;

/// An error of the tar reader, saying that the archive is truncated when the stream had ended.
pub fn read_error(e: std::io::Error, eof: &AtomicBool) -> anyhow::Error {
    let e = anyhow::Error::new(e);
    if eof.load(Ordering::Relaxed) {
        e.context("the archive is truncated")
    } else {
        e.context("reading the archive")
    }
}

/// Fails when the tar reader stopped at the end of the stream rather than at the end-of-archive marker.
pub fn check_end(eof: &AtomicBool) -> anyhow::Result<()> {
    if eof.load(Ordering::Relaxed) {
        anyhow::bail!("the archive ends without its end-of-archive marker: it is truncated");
    }
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ListEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub mode: u32,
    pub mtime: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else {
        Compression::None
    }
}

/// Decompresses `input` into `tx` until its end; then reads the input to its very end (so a hashing
/// reader under it checks the whole object). Stops early when `stop` is set.
fn decode(
    input: BoxReader,
    tx: SyncSender<std::io::Result<Vec<u8>>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    struct Count<R>(R, u64);
    impl<R: Read> Read for Count<R> {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(b)?;
            self.1 += n as u64;
            Ok(n)
        }
    }
    let bridge = tokio_util::io::SyncIoBridge::new(input);
    let mut raw = BufReader::with_capacity(CHUNK, Count(bridge, 0));
    let kind = detect(raw.fill_buf()?);
    let mut sending = true;
    let mut pump = |r: &mut dyn Read| -> anyhow::Result<()> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < buf.len() {
                let n = r.read(&mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Ok(());
            }
            buf.truncate(filled);
            if sending && tx.send(Ok(buf)).is_err() {
                // The tar reader is done (end-of-archive marker): keep reading to the end.
                sending = false;
            }
        }
    };
    // A compressed stream cut short ends in UnexpectedEof.
    let cut = |e: anyhow::Error, what: &'static str| {
        let short = e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
        let e = e.context(format!("decompressing ({what})"));
        if short {
            e.context("the archive is truncated")
        } else {
            e
        }
    };
    let mut raw = match kind {
        Compression::Zstd => {
            let mut d = zstd::Decoder::with_buffer(raw)?;
            pump(&mut d).map_err(|e| cut(e, "zstd"))?;
            d.finish()
        }
        Compression::Gzip => {
            let mut d = flate2::bufread::MultiGzDecoder::new(raw);
            pump(&mut d).map_err(|e| cut(e, "gzip"))?;
            d.into_inner()
        }
        Compression::None => {
            pump(&mut raw)?;
            raw
        }
    };
    drop(tx);
    if !stop.load(Ordering::Relaxed) {
        std::io::copy(&mut raw, &mut std::io::sink())?;
    }
    Ok(raw.get_ref().1)
}

/// Runs `f` over a tar stream of `input`, with decompression on its own thread.
async fn with_tar<T: Send + 'static>(
    input: BoxReader,
    f: impl FnOnce(&mut TarReader, &AtomicBool) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<(T, u64)> {
    let (tx, rx) = sync_channel::<std::io::Result<Vec<u8>>>(4);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let handle = tokio::runtime::Handle::current();
    let decoder = crate::base::blocking::spawn_blocking(move || {
        let _g = handle.enter();
        decode(input, tx, stop2)
    });
    let parser = crate::base::blocking::spawn_blocking(move || {
        let eof = Arc::new(AtomicBool::new(false));
        let inner = ChannelReader::new(rx);
        let mut a = tar::Archive::new(Tracked {
            inner,
            eof: eof.clone(),
        });
        let r = f(&mut a, &eof);
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        r
    });
    let parsed = parser.await.context("tar thread failed")?;
    let decoded = decoder.await.context("decompression thread failed")?;
    match (parsed, decoded) {
        (Err(e), _) if e.downcast_ref::<Refused>().is_some() => Err(e),
        (_, Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(e),
        (Ok(v), Ok(n)) => Ok((v, n)),
    }
}

pub(super) fn kind_name(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Regular | tar::EntryType::Continuous => "file",
        tar::EntryType::Directory => "dir",
        tar::EntryType::Symlink => "symlink",
        tar::EntryType::Link => "hardlink",
        tar::EntryType::Char => "char device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        _ => "other",
    }
}

/// The entries of `input`; `progress` counts its files and their bytes.
pub async fn list(input: BoxReader, mut progress: Progress) -> anyhow::Result<Vec<ListEntry>> {
    let counter = progress.counter();
    let (v, _) = with_tar(input, move |a, eof| {
        let mut out = Vec::new();
        for e in a.entries().context("reading the archive")? {
            let e = e.map_err(|e| read_error(e, eof))?;
            let h = e.header();
            if h.entry_type().is_file() {
                counter.add_file();
                counter.add_bytes(e.size());
            }
            out.push(ListEntry {
                path: e.path()?.display().to_string(),
                kind: kind_name(h.entry_type()).to_string(),
                size: e.size(),
                mode: h.mode().unwrap_or(0),
                mtime: h.mtime().unwrap_or(0),
                link: e.link_name()?.map(|l| l.display().to_string()),
            });
        }
        check_end(eof)?;
        Ok(out)
    })
    .await?;
    progress.finish();
    Ok(v)
}

/// Extracts `input` into `to` (created when missing): see `unpack.rs` for what is refused. `progress`
/// counts the files written and their bytes (its totals, when known, are the caller's: a manifest's).
pub async fn extract(
    input: BoxReader,
    to: PathBuf,
    mut progress: Progress,
    symlinks: Symlinks,
) -> anyhow::Result<ExtractStats> {
    std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
    let counter: Counter = progress.counter();
    let (mut stats, n) = with_tar(input, move |a, eof| {
        super::unpack::unpack_all(a, &to, eof, symlinks, &counter)
    })
    .await?;
    stats.compressed_bytes = n;
    progress.finish();
    Ok(stats)
}
