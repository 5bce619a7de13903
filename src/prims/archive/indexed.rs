//! Indexed archives (`tar.create{index = ...}`): a tar.zst cut into zstd frames at entry boundaries, and
//! beside it an index (index.rs) saying where each file's entry lies and what its sha256 is. Given the
//! parent snapshot's index, a regular file whose stat is unchanged is not archived again: its line copies
//! the parent's sha256 and location, so the new object holds what changed plus every directory and
//! symlink (the tree's shape), and `tar.compose` rebuilds the whole tree from the objects.
//!
//! Memory stays bounded: the parent's files are loaded into a map, and only the index lines of the open
//! frame wait (their frame's offsets are known once it is cut); a frame is cut early when too many wait.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use globset::GlobSet;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::create::{CHUNK, ChannelWriter, Counting, Stats, walk};
use super::frames::{Frame, Frames};
use super::index::{Entry, FORMAT, FileEntry, Header, IndexReader, IndexWriter, Kind, Location};
use crate::base::stream::{BoxReader, BoxSink};
use crate::prims::progress::{Counter, Progress, Scan};

pub const DEFAULT_FRAME: u64 = 1 << 20;

/// Index lines that may wait for their frame to be cut; more and the frame is cut early (a directory of
/// a million unchanged files would otherwise keep them all in memory behind one new file).
const MAX_PENDING: usize = 4096;

pub struct IndexedOpts {
    pub paths: Vec<PathBuf>,
    pub level: Option<i32>,
    pub exclude: Option<GlobSet>,
    pub flat: bool,
    pub workers: u32,
    /// The store key the archive is written to, recorded in the index.
    pub object: String,
    /// Frames are cut at the first entry boundary after this many uncompressed bytes.
    pub frame: u64,
    /// The parent snapshot's index: unchanged files are referenced, not archived.
    pub parent: Option<BoxReader>,
}

#[derive(Default, Debug, Clone)]
pub struct IndexedStats {
    /// `files` counts every file of the tree; `bytes_in` only the bytes read (the new files').
    pub stats: Stats,
    pub files_new: u64,
    pub files_unchanged: u64,
    pub bytes_new: u64,
    pub bytes_unchanged: u64,
    pub frames: u64,
    /// The other objects that unchanged files are read from.
    pub referenced: BTreeSet<String>,
}

pub struct Created {
    pub stats: IndexedStats,
    /// What the archive's and the index's sinks reported when committed.
    pub object: Map<String, Json>,
    pub index: Map<String, Json>,
}

async fn drain(mut rx: mpsc::Receiver<Vec<u8>>, sink: &mut BoxSink) -> std::io::Result<u64> {
    let mut n = 0u64;
    while let Some(chunk) = rx.recv().await {
        n += chunk.len() as u64;
        // Handed on as it is: the hash, the encryptor and the file writer take the buffer itself.
        sink.write_piece(chunk).await?;
    }
    Ok(n)
}

/// Streams the archive into `sink` and its index into `index_sink`, and commits both (the archive
/// first). On any error both are aborted. Without totals, `progress` gets them from a scan of the tree
/// beside the archive, which also counts the bytes of unchanged files apart (they are not read).
pub async fn create_indexed(
    opts: IndexedOpts,
    mut sink: BoxSink,
    mut index_sink: BoxSink,
    mut progress: Progress,
) -> anyhow::Result<Created> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
    let (itx, irx) = mpsc::channel::<Vec<u8>>(8);
    let handle = tokio::runtime::Handle::current();
    let counter = progress.counter();
    let scan = (counter.shown() && !counter.has_totals()).then(|| counter.scan());
    let producer = crate::base::blocking::spawn_blocking(move || {
        // The parent index is an async reader bridged to sync I/O, which needs the runtime.
        let _guard = handle.enter();
        build(opts, tx, itx, &counter, scan)
    });
    // Both drained at once: the producer writes to either.
    let (archived, indexed) = tokio::join!(drain(rx, &mut sink), drain(irx, &mut index_sink));
    let built = producer.await.context("archive thread failed");
    let result = match (archived, indexed, built) {
        (Err(e), _, _) => Err(anyhow::Error::new(e).context("writing the archive")),
        (_, Err(e), _) => Err(anyhow::Error::new(e).context("writing the index")),
        (_, _, Err(e)) | (_, _, Ok(Err(e))) => Err(e),
        (Ok(out), Ok(_), Ok(Ok(stats))) => Ok((stats, out)),
    };
    let stats = match result {
        Ok((mut stats, out)) => {
            stats.stats.bytes_out = out;
            stats
        }
        Err(e) => {
            sink.abort().await;
            index_sink.abort().await;
            return Err(e);
        }
    };
    let object = match crate::base::stream::finish(sink).await {
        Ok(o) => o,
        Err(e) => {
            index_sink.abort().await;
            return Err(e.context("committing the archive"));
        }
    };
    let index = crate::base::stream::finish(index_sink)
        .await
        .context("committing the index")?;
    progress.finish();
    Ok(Created {
        stats,
        object,
        index,
    })
}

/// The parent index's regular files by path.
fn load_parent(r: impl Read, object: &str) -> anyhow::Result<HashMap<String, FileEntry>> {
    let (_, entries) = IndexReader::open(r)?;
    let mut files = HashMap::new();
    for e in entries {
        let e = e?;
        if let Kind::File(f) = e.kind {
            // Its locations would point into the archive being replaced.
            if f.loc.obj == object {
                bail!(
                    "it names {object} itself (for {}), the object being written now",
                    e.path
                );
            }
            files.insert(e.path, f);
        }
    }
    Ok(files)
}

/// The index line's stat fields of a file on disk (what `same_stat` compares).
fn stat_entry(md: &std::fs::Metadata) -> FileEntry {
    FileEntry {
        size: md.len(),
        mode: md.mode() & 0o7777,
        mtime: md.mtime(),
        mtime_ns: md.mtime_nsec(),
        ino: md.ino(),
        ctime: md.ctime(),
        ctime_ns: md.ctime_nsec(),
        sha256: String::new(),
        loc: Location::default(),
    }
}

fn build(
    opts: IndexedOpts,
    tx: mpsc::Sender<Vec<u8>>,
    itx: mpsc::Sender<Vec<u8>>,
    progress: &Counter,
    scan: Option<Scan>,
) -> anyhow::Result<IndexedStats> {
    let parent = Arc::new(match opts.parent {
        Some(r) => load_parent(tokio_util::io::SyncIoBridge::new(r), &opts.object)
            .context("reading the parent index")?,
        None => HashMap::new(),
    });
    let flat = opts.flat && opts.paths.len() == 1;
    if let Some(scan) = scan {
        // Started once the parent is known, so that it can tell the bytes that will not be read.
        let p = parent.clone();
        let unchanged: Option<super::scan::Unchanged> = (!p.is_empty()).then(|| {
            Arc::new(move |name: &str, md: &std::fs::Metadata| {
                p.get(name).is_some_and(|e| e.same_stat(&stat_entry(md)))
            }) as super::scan::Unchanged
        });
        super::scan::start(&opts.paths, flat, opts.exclude.clone(), unchanged, scan);
    }
    let out = ChannelWriter {
        buf: crate::base::pipeline::pieces().take(),
        tx,
    };
    let level = opts.level.unwrap_or(super::DEFAULT_ZSTD_LEVEL);
    let mut b = tar::Builder::new(Frames::new(out, level, opts.workers)?);
    b.follow_symlinks(false);
    let header = Header {
        format: FORMAT.into(),
        object: opts.object.clone(),
        frame: opts.frame,
    };
    let index_out = ChannelWriter {
        buf: Vec::with_capacity(CHUNK),
        tx: itx,
    };
    let mut ix = Indexer {
        index: IndexWriter::new(index_out, &header)?,
        pending: Vec::new(),
        waiting: false,
        parent,
        object: opts.object,
        frame: opts.frame.max(1),
        stats: IndexedStats::default(),
        progress,
    };
    for root in &opts.paths {
        walk(
            root,
            flat,
            opts.exclude.as_ref(),
            &mut |path, name, md, flat_root| ix.add(&mut b, path, name, md, flat_root),
        )?;
    }
    ix.cut(&mut b)?;
    // The end-of-archive blocks, in a last frame of their own.
    b.finish()?;
    let (mut w, _, frames) = b.into_inner()?.finish()?;
    w.flush()?;
    ix.stats.frames = frames;
    ix.index.finish()?.flush()?;
    Ok(ix.stats)
}

/// Hashes what a file gives as tar copies it into the archive (one read per file).
struct Hashed<'a, R> {
    inner: R,
    sha: &'a mut Sha256,
}

impl<R: Read> Read for Hashed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

struct Indexer<'a, W: Write> {
    index: IndexWriter<W>,
    /// Lines behind a file in the open frame, in order; `true` for those that need the frame's offsets.
    pending: Vec<(Entry, bool)>,
    waiting: bool,
    parent: Arc<HashMap<String, FileEntry>>,
    object: String,
    frame: u64,
    stats: IndexedStats,
    progress: &'a Counter,
}

impl<W: Write> Indexer<'_, W> {
    fn emit(&mut self, e: Entry, in_frame: bool) -> anyhow::Result<()> {
        self.waiting |= in_frame;
        if self.waiting {
            self.pending.push((e, in_frame));
            Ok(())
        } else {
            self.index.entry(&e)
        }
    }

    /// Ends the open frame and writes the lines that waited for it.
    fn cut<A: Write>(&mut self, b: &mut tar::Builder<Frames<A>>) -> anyhow::Result<()> {
        let frame = b.get_mut().cut()?;
        self.flush(frame)
    }

    fn flush(&mut self, frame: Option<Frame>) -> anyhow::Result<()> {
        for (mut e, in_frame) in std::mem::take(&mut self.pending) {
            if in_frame && let Kind::File(f) = &mut e.kind {
                let fr = frame.context("an archived file's frame was empty")?;
                f.loc.foff = fr.foff;
                f.loc.flen = fr.flen;
                f.loc.fupos = fr.fupos;
            }
            self.index.entry(&e)?;
        }
        self.waiting = false;
        Ok(())
    }

    fn add<A: Write>(
        &mut self,
        b: &mut tar::Builder<Frames<A>>,
        path: &Path,
        name: &Path,
        md: &std::fs::Metadata,
        flat_root: bool,
    ) -> anyhow::Result<()> {
        // JSON holds text: a name that is not UTF-8 could not be found again.
        let Some(iname) = name.to_str() else {
            bail!("{}: an indexed archive needs UTF-8 names", path.display());
        };
        let ft = md.file_type();
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(md, tar::HeaderMode::Complete);
        let entry = |kind| Entry {
            path: iname.to_string(),
            kind,
        };
        if ft.is_dir() {
            b.append_data(&mut header, name, std::io::empty())
                .with_context(|| format!("archiving {}", path.display()))?;
            if !flat_root {
                self.stats.stats.dirs += 1;
            }
            self.emit(
                entry(Kind::Dir {
                    mode: md.mode() & 0o7777,
                    mtime: md.mtime(),
                }),
                false,
            )?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(path)
                .with_context(|| format!("reading link {}", path.display()))?;
            let Some(link) = target.to_str() else {
                bail!(
                    "{}: an indexed archive needs UTF-8 link targets",
                    path.display()
                );
            };
            header.set_size(0);
            b.append_link(&mut header, name, &target)
                .with_context(|| format!("archiving {}", path.display()))?;
            self.stats.stats.symlinks += 1;
            self.emit(
                entry(Kind::Symlink {
                    link: link.to_string(),
                    mtime: md.mtime(),
                }),
                false,
            )?;
        } else if ft.is_file() {
            let mut fe = stat_entry(md);
            self.stats.stats.files += 1;
            if let Some(p) = self.parent.get(iname).filter(|p| p.same_stat(&fe)) {
                fe.sha256.clone_from(&p.sha256);
                fe.loc = p.loc.clone();
                self.stats.files_unchanged += 1;
                self.stats.bytes_unchanged += fe.size;
                self.progress.add_unchanged(fe.size);
                self.stats.referenced.insert(fe.loc.obj.clone());
                self.emit(entry(Kind::File(fe)), false)?;
            } else {
                // A large file starts a frame of its own: restoring a small neighbour does not read it.
                if fe.size >= self.frame && b.get_ref().open_len() > 0 {
                    self.cut(b)?;
                }
                fe.loc.tpos = b.get_ref().upos();
                fe.loc.obj.clone_from(&self.object);
                fe.sha256 = self.append_file(b, &mut header, path, name, fe.size)?;
                self.progress.add_file();
                self.stats.files_new += 1;
                self.stats.bytes_new += fe.size;
                self.emit(entry(Kind::File(fe)), true)?;
            }
        } else {
            tracing::warn!(
                "skipping {}: not a file, directory or symlink",
                path.display()
            );
            self.stats.stats.skipped += 1;
            return Ok(());
        }
        if b.get_ref().open_len() >= self.frame || self.pending.len() >= MAX_PENDING {
            self.cut(b)?;
        }
        Ok(())
    }

    /// Archives a file's data and returns its sha256.
    fn append_file<A: Write>(
        &mut self,
        b: &mut tar::Builder<Frames<A>>,
        header: &mut tar::Header,
        path: &Path,
        name: &Path,
        size: u64,
    ) -> anyhow::Result<String> {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let before = self.stats.stats.bytes_in;
        let mut sha = Sha256::new();
        // A BufReader lets io::copy (inside tar) move large blocks instead of 8 KiB ones.
        let r = std::io::BufReader::with_capacity(
            (size as usize).clamp(4096, 256 * 1024),
            Hashed {
                inner: Counting {
                    inner: f.take(size),
                    progress: self.progress,
                    n: &mut self.stats.stats.bytes_in,
                },
                sha: &mut sha,
            },
        );
        b.append_data(header, name, r)
            .with_context(|| format!("archiving {}", path.display()))?;
        if self.stats.stats.bytes_in - before != size {
            bail!("{} changed size while it was archived", path.display());
        }
        Ok(hex::encode(sha.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::stream::FileSink;
    use crate::prims::progress::Unit;

    async fn run(
        dir: &Path,
        out: &str,
        frame: u64,
        parent: Option<&str>,
    ) -> (IndexedStats, Vec<Entry>, Vec<u8>) {
        let parent = match parent {
            Some(p) => {
                let f = tokio::fs::File::open(dir.join(p)).await.unwrap();
                Some(Box::pin(f) as BoxReader)
            }
            None => None,
        };
        let opts = IndexedOpts {
            paths: vec![dir.join("src")],
            level: None,
            exclude: None,
            flat: true,
            workers: 0,
            object: out.into(),
            frame,
            parent,
        };
        let sink = Box::new(FileSink::create(dir.join(out)).await.unwrap());
        let idx = Box::new(
            FileSink::create(dir.join(format!("{out}.idx")))
                .await
                .unwrap(),
        );
        let done = create_indexed(opts, sink, idx, Progress::new("t", Unit::Files))
            .await
            .unwrap();
        let index = std::fs::read(dir.join(format!("{out}.idx"))).unwrap();
        let (h, r) = IndexReader::open(&index[..]).unwrap();
        assert_eq!((h.object.as_str(), h.frame), (out, frame));
        let entries = r.collect::<anyhow::Result<Vec<_>>>().unwrap();
        (done.stats, entries, std::fs::read(dir.join(out)).unwrap())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn one_entry_per_frame_and_unchanged_files_referenced() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        for i in 0..20 {
            std::fs::write(
                src.join(format!("d/f{i:02}")),
                format!("{i}").repeat(i * 100),
            )
            .unwrap();
        }
        std::os::unix::fs::symlink("d/f01", src.join("l")).unwrap();
        // frame = 1: every entry closes its frame.
        let (st, entries, obj) = run(tmp.path(), "one", 1, None).await;
        assert_eq!(
            (st.files_new, st.frames),
            (20, 23 + 1),
            "20 files, 3 dirs/links, the end"
        );
        let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names[..3], [".", "d", "d/f00"]);
        assert_eq!(names.last(), Some(&"l"));
        let mut last_end = 0;
        for e in &entries {
            let Kind::File(f) = &e.kind else { continue };
            assert!(f.loc.foff >= last_end, "one frame per file");
            last_end = f.loc.foff + f.loc.flen;
            let frame = zstd::decode_all(&obj[f.loc.foff as usize..last_end as usize]).unwrap();
            assert_eq!(f.loc.tpos, f.loc.fupos, "the entry starts its frame");
            assert_eq!(frame.len() as u64, 512 + f.size.div_ceil(512) * 512);
        }
        // Again with the first as parent, after rewriting one file: only that one is archived.
        std::fs::write(src.join("d/f05"), "changed").unwrap();
        let (st, entries2, _) = run(tmp.path(), "two", 1 << 20, Some("one.idx")).await;
        assert_eq!((st.files_new, st.files_unchanged), (1, 19));
        assert_eq!(st.referenced.iter().collect::<Vec<_>>(), ["one"]);
        for (a, b) in entries.iter().zip(&entries2) {
            match (&a.kind, &b.kind) {
                (Kind::File(x), Kind::File(y)) if a.path == "d/f05" => {
                    assert_eq!(y.loc.obj, "two");
                    assert_ne!(x.sha256, y.sha256);
                }
                (Kind::File(x), Kind::File(y)) => assert_eq!(x, y, "{}", a.path),
                _ => assert_eq!(a.path, b.path),
            }
        }
        // A parent that names the object being written is refused.
        let tmp2 = tmp.path().to_path_buf();
        let opts = IndexedOpts {
            paths: vec![src.clone()],
            level: None,
            exclude: None,
            flat: true,
            workers: 0,
            object: "one".into(),
            frame: 1,
            parent: Some(Box::pin(
                tokio::fs::File::open(tmp2.join("one.idx")).await.unwrap(),
            )),
        };
        let sink = Box::new(FileSink::create(tmp2.join("x")).await.unwrap());
        let idx = Box::new(FileSink::create(tmp2.join("x.idx")).await.unwrap());
        let err = create_indexed(opts, sink, idx, Progress::new("t", Unit::Files))
            .await
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("names one itself"), "{err:#}");
        assert!(!tmp2.join("x").exists() && !tmp2.join("x.idx").exists());
    }
}
