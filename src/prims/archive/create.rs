//! Building a tar stream (optionally compressed) on a blocking thread, into a channel that an async task
//! drains into the sink. Nothing is staged locally, except a reader of unknown size (tar needs each
//! entry's size up front): that one is spooled to a temporary file first.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use globset::GlobSet;
use tokio::sync::mpsc;

use crate::base::stream::{BoxReader, BoxSink};
use crate::prims::progress::{Counter, Progress};

pub const CHUNK: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compression {
    None,
    Zstd,
    Gzip,
}

impl Compression {
    pub fn parse(s: &str) -> anyhow::Result<Compression> {
        Ok(match s {
            "zstd" | "zst" => Compression::Zstd,
            "gzip" | "gz" => Compression::Gzip,
            "none" | "" => Compression::None,
            other => bail!("unknown compression '{other}' (use zstd, gzip or none)"),
        })
    }
}

pub enum Source {
    Paths(Vec<PathBuf>),
    Reader {
        reader: BoxReader,
        name: String,
        size: Option<u64>,
        mode: u32,
    },
}

pub struct CreateOpts {
    pub source: Source,
    pub compression: Compression,
    pub level: Option<i32>,
    pub exclude: Option<GlobSet>,
    /// One directory in `from`: put its contents at the archive root instead of under its name.
    pub flat: bool,
    pub workers: u32,
}

#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub skipped: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// A `Write` that hands full chunks to an async receiver.
pub(super) struct ChannelWriter {
    pub(super) buf: Vec<u8>,
    pub(super) tx: mpsc::Sender<Vec<u8>>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, crate::base::pipeline::pieces().take());
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::other("the archive's destination stopped accepting data"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > CHUNK && !self.buf.is_empty() {
            self.send()?;
        }
        if data.len() >= CHUNK {
            self.tx
                .blocking_send(data.to_vec())
                .map_err(|_| std::io::Error::other("the archive's destination stopped"))?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Streams the archive into `sink` and commits it. On any error the sink is aborted. Without totals,
/// `progress` gets them from a scan of the paths beside the archive (a reader's are its size).
pub async fn create(
    opts: CreateOpts,
    mut sink: BoxSink,
    mut progress: Progress,
) -> anyhow::Result<(Stats, serde_json::Map<String, serde_json::Value>)> {
    let counter = progress.counter();
    if counter.shown() && !counter.has_totals() {
        match &opts.source {
            Source::Paths(paths) => super::scan::start(
                paths,
                opts.flat && paths.len() == 1,
                opts.exclude.clone(),
                None,
                counter.scan(),
            ),
            Source::Reader { size, .. } => counter.set_totals(Some(1), *size),
        }
    }
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    // A reader source is bridged to sync I/O here, where the runtime handle is available.
    let handle = tokio::runtime::Handle::current();
    let producer = crate::base::blocking::spawn_blocking(move || {
        let _guard = handle.enter();
        build(opts, tx, &counter)
    });
    let mut out = 0u64;
    let written: std::io::Result<()> = async {
        while let Some(chunk) = rx.recv().await {
            out += chunk.len() as u64;
            sink.write_piece(chunk).await?;
        }
        Ok(())
    }
    .await;
    drop(rx);
    let built = producer.await.context("archive thread failed");
    let result = match (written, built) {
        (Err(e), _) => Err(anyhow::Error::new(e).context("writing the archive")),
        (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(Err(e))) => Err(e),
        (Ok(()), Ok(Ok(stats))) => Ok(stats),
    };
    match result {
        Ok(mut stats) => {
            stats.bytes_out = out;
            let info = crate::base::stream::finish(sink).await?;
            progress.finish();
            Ok((stats, info))
        }
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}

fn build(opts: CreateOpts, tx: mpsc::Sender<Vec<u8>>, progress: &Counter) -> anyhow::Result<Stats> {
    let w = ChannelWriter {
        buf: crate::base::pipeline::pieces().take(),
        tx,
    };
    let mut stats = Stats::default();
    match opts.compression {
        Compression::None => {
            let mut w = write_tar(opts, w, &mut stats, progress)?;
            w.flush()?;
        }
        Compression::Zstd => {
            let mut enc = zstd::Encoder::new(w, opts.level.unwrap_or(super::DEFAULT_ZSTD_LEVEL))?;
            if opts.workers > 0 {
                enc.multithread(opts.workers)?;
            }
            let enc = write_tar(opts, enc, &mut stats, progress)?;
            let mut w = enc.finish()?;
            w.flush()?;
        }
        Compression::Gzip => {
            let level = opts.level.unwrap_or(6).clamp(0, 9) as u32;
            let enc = flate2::write::GzEncoder::new(w, flate2::Compression::new(level));
            let enc = write_tar(opts, enc, &mut stats, progress)?;
            let mut w = enc.finish()?;
            w.flush()?;
        }
    }
    Ok(stats)
}

/// Counts bytes going into the tar builder for progress and stats.
pub(super) struct Counting<'a, R> {
    pub(super) inner: R,
    pub(super) progress: &'a Counter,
    pub(super) n: &'a mut u64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.n += n as u64;
        self.progress.add_bytes(n as u64);
        Ok(n)
    }
}

fn write_tar<W: Write>(
    opts: CreateOpts,
    w: W,
    stats: &mut Stats,
    progress: &Counter,
) -> anyhow::Result<W> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    match opts.source {
        Source::Reader {
            reader,
            name,
            size,
            mode,
        } => {
            let mut sync = tokio_util::io::SyncIoBridge::new(reader);
            let mut header = tar::Header::new_gnu();
            header.set_mode(mode);
            header.set_mtime(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            );
            header.set_entry_type(tar::EntryType::Regular);
            match size {
                Some(size) => {
                    header.set_size(size);
                    let r = Counting {
                        inner: (&mut sync).take(size),
                        progress,
                        n: &mut stats.bytes_in,
                    };
                    b.append_data(&mut header, &name, r)
                        .with_context(|| format!("archiving {name}"))?;
                    if stats.bytes_in != size {
                        bail!(
                            "{name}: the reader gave {} bytes, not the {size} announced",
                            stats.bytes_in
                        );
                    }
                }
                None => {
                    // tar needs the size before the data: spool to a temporary file.
                    let mut tmp = tempfile::tempfile().context("creating a spool file")?;
                    let n = std::io::copy(&mut sync, &mut tmp)
                        .with_context(|| format!("reading {name}"))?;
                    std::io::Seek::rewind(&mut tmp)?;
                    header.set_size(n);
                    let r = Counting {
                        inner: tmp,
                        progress,
                        n: &mut stats.bytes_in,
                    };
                    b.append_data(&mut header, &name, r)
                        .with_context(|| format!("archiving {name}"))?;
                }
            }
            stats.files += 1;
            progress.add_file();
        }
        Source::Paths(paths) => {
            let flat = opts.flat && paths.len() == 1;
            for root in &paths {
                add_path(&mut b, root, flat, opts.exclude.as_ref(), stats, progress)?;
            }
        }
    }
    b.finish()?;
    Ok(b.into_inner()?)
}

fn add_path<W: Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    flat: bool,
    exclude: Option<&GlobSet>,
    stats: &mut Stats,
    progress: &Counter,
) -> anyhow::Result<()> {
    walk(root, flat, exclude, &mut |path, name, md, flat_root| {
        let before = stats.dirs;
        add_one(b, path, name, md, stats, progress)?;
        if flat_root {
            stats.dirs = before;
        }
        Ok(())
    })
}

/// Calls `f(path, name in the archive, metadata, is the flat root)` for `root` and everything under it
/// that `exclude` leaves, in archive order (depth first, sorted by name). Plain and indexed archives
/// share it, so both name and order their entries alike.
pub(super) fn walk(
    root: &Path,
    flat: bool,
    exclude: Option<&GlobSet>,
    f: &mut dyn FnMut(&Path, &Path, &std::fs::Metadata, bool) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let md =
        std::fs::symlink_metadata(root).with_context(|| format!("reading {}", root.display()))?;
    let base = base_name(root)?;
    if !md.is_dir() {
        return f(root, &base, &md, false);
    }
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let rel = e.path().strip_prefix(root).unwrap_or(e.path());
            rel.as_os_str().is_empty() || exclude.is_none_or(|g| !g.is_match(rel))
        });
    for entry in walker {
        let entry = entry.with_context(|| format!("walking {}", root.display()))?;
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let is_root = rel.as_os_str().is_empty();
        let name = if flat {
            if is_root {
                // The root's own mode and mtime, as "./" (extraction applies them to the destination).
                PathBuf::from(".")
            } else {
                rel.to_path_buf()
            }
        } else {
            base.join(rel)
        };
        let md = entry
            .metadata()
            .with_context(|| format!("reading {}", entry.path().display()))?;
        f(entry.path(), &name, &md, is_root && flat)?;
    }
    Ok(())
}

/// The name a root has in the archive (its own, or for `.` and `/` the directory's real one).
pub(super) fn base_name(root: &Path) -> anyhow::Result<PathBuf> {
    Ok(match root.file_name() {
        Some(n) => PathBuf::from(n),
        None => {
            let canon = std::fs::canonicalize(root)?;
            PathBuf::from(canon.file_name().unwrap_or(std::ffi::OsStr::new("root")))
        }
    })
}

fn add_one<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    md: &std::fs::Metadata,
    stats: &mut Stats,
    progress: &Counter,
) -> anyhow::Result<()> {
    let ft = md.file_type();
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(md, tar::HeaderMode::Complete);
    if ft.is_dir() {
        b.append_data(&mut header, name, std::io::empty())
            .with_context(|| format!("archiving {}", path.display()))?;
        stats.dirs += 1;
    } else if ft.is_symlink() {
        let target =
            std::fs::read_link(path).with_context(|| format!("reading link {}", path.display()))?;
        header.set_size(0);
        b.append_link(&mut header, name, &target)
            .with_context(|| format!("archiving {}", path.display()))?;
        stats.symlinks += 1;
    } else if ft.is_file() {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = md.len();
        let before = stats.bytes_in;
        // A BufReader lets io::copy (inside tar) move large blocks instead of 8 KiB ones.
        let r = std::io::BufReader::with_capacity(
            (size as usize).clamp(4096, 256 * 1024),
            Counting {
                inner: f.take(size),
                progress,
                n: &mut stats.bytes_in,
            },
        );
        b.append_data(&mut header, name, r)
            .with_context(|| format!("archiving {}", path.display()))?;
        if stats.bytes_in - before != size {
            bail!("{} changed size while it was archived", path.display());
        }
        stats.files += 1;
        progress.add_file();
    } else {
        tracing::warn!(
            "skipping {}: not a file, directory or symlink",
            path.display()
        );
        stats.skipped += 1;
    }
    Ok(())
}
