//! `tar.compose`: a plain tar stream of an indexed snapshot (or of one path in it), put together from the
//! objects its index names. Directories and symlinks are made from their index lines; files are their
//! own tar entries, copied from the stored frames. Consecutive files that lie one after the other in one
//! object form a run, read with ONE ranged read (a full restore of a full snapshot is one read per
//! object, one file is one frame), decoded as a stream of frames and skipped forward to each entry. Every
//! file's name, size and sha256 are checked against the index while it streams; a mismatch fails the
//! stream naming the file, so an extraction of it fails.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::create::CHUNK;
use super::extract::kind_name;
use super::index::{Entry, FileEntry, IndexReader, Kind, Location, ancestor, normalize, selected};
use crate::base::stream::BoxReader;
use crate::prims::storage::{Backend, Range, check_key};

/// Entries a run may gather before it is read (they wait in memory until its range is known).
const MAX_RUN: usize = 65536;
/// Compressed bytes of frames without wanted files (deleted files, directories only) a run reads
/// through rather than starting another ranged read.
const MAX_GAP: u64 = 1 << 20;

pub struct ComposeOpts {
    pub backend: Arc<dyn Backend>,
    /// Prepended (with '/') to the index's object keys: they are relative to it.
    pub base: Option<String>,
    pub index: BoxReader,
    /// Only this entry and what lies under it (plus the directories leading to it).
    pub path: Option<String>,
}

/// What the stream has given so far; `done` once it ended well.
#[derive(Default, Debug, Clone)]
pub struct Counts {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of file data.
    pub bytes: u64,
    /// Ranged reads of the store, and the compressed bytes they gave.
    pub ranges: u64,
    pub stored_bytes: u64,
    pub done: bool,
}

pub type SharedCounts = Arc<Mutex<Counts>>;

fn count(c: &SharedCounts, f: impl FnOnce(&mut Counts)) {
    f(&mut c.lock().unwrap_or_else(|e| e.into_inner()));
}

/// Starts composing; returns once the index was opened and, with `path`, the path was found in it
/// (so a bad index or a path matching nothing is an error here, not in the middle of an extraction).
pub async fn compose(opts: ComposeOpts) -> anyhow::Result<(BoxReader, SharedCounts)> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
    let counts = SharedCounts::default();
    let shared = counts.clone();
    let handle = tokio::runtime::Handle::current();
    crate::base::blocking::spawn_blocking(move || {
        // The index and the ranged reads are async readers bridged to sync I/O.
        let _guard = handle.enter();
        let mut ready = Some(ready_tx);
        let out = Out {
            buf: Vec::with_capacity(CHUNK),
            tx: tx.clone(),
        };
        match produce(opts, out, &shared, &handle, &mut ready) {
            Ok(()) => count(&shared, |c| c.done = true),
            Err(e) => match ready.take() {
                Some(r) => {
                    let _ = r.send(Err(e));
                }
                // The reader fails with it; extraction then fails naming it.
                None => {
                    let _ = tx.blocking_send(Err(io::Error::other(format!("{e:#}"))));
                }
            },
        }
    });
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => bail!("the compose thread failed"),
    }
    let chunks =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok((Box::pin(tokio_util::io::StreamReader::new(chunks)), counts))
}

/// The tar stream's way out: chunks to the async reader.
struct Out {
    buf: Vec<u8>,
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl Out {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::other("the composed stream's reader went away"))
    }
}

impl Write for Out {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > CHUNK {
            self.send()?;
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

fn produce(
    opts: ComposeOpts,
    out: Out,
    counts: &SharedCounts,
    handle: &tokio::runtime::Handle,
    ready: &mut Option<oneshot::Sender<anyhow::Result<()>>>,
) -> anyhow::Result<()> {
    let sel = opts.path.as_deref().map(normalize).unwrap_or_default();
    let (_, entries) = IndexReader::open(tokio_util::io::SyncIoBridge::new(opts.index))
        .context("reading the index")?;
    let mut signal = || {
        if let Some(r) = ready.take() {
            let _ = r.send(Ok(()));
        }
    };
    if sel.is_empty() {
        signal();
    }
    let mut c = Composer {
        b: tar::Builder::new(out),
        backend: opts.backend,
        base: opts.base.unwrap_or_default(),
        handle: handle.clone(),
        counts: counts.clone(),
        run: Vec::new(),
        span: None,
    };
    let mut found = sel.is_empty();
    // The directories leading to `sel` (walk order puts them first), so that extraction can make it.
    let mut leading = Vec::new();
    for e in entries {
        let e = e.context("reading the index")?;
        if !selected(&e.path, &sel) {
            if !found && matches!(e.kind, Kind::Dir { .. }) && ancestor(&e.path, &sel) {
                leading.push(e);
            }
            continue;
        }
        if !found {
            found = true;
            signal();
            for d in std::mem::take(&mut leading) {
                c.push(d)?;
            }
        }
        c.push(e)?;
    }
    if !found {
        bail!("path '{sel}': no such entry in the snapshot's index");
    }
    c.finish()
}

/// The range a run reads: frames of one object, from the first file's frame to the last one's end.
#[derive(Debug, Clone, PartialEq)]
struct Span {
    obj: String,
    start: u64,
    end: u64,
    /// Uncompressed offset of the range's start in that object's tar stream.
    fupos: u64,
    last_foff: u64,
    last_tpos: u64,
}

impl Span {
    fn new(l: &Location) -> Span {
        Span {
            obj: l.obj.clone(),
            start: l.foff,
            end: l.foff + l.flen,
            fupos: l.fupos,
            last_foff: l.foff,
            last_tpos: l.tpos,
        }
    }

    /// Whether the file at `l` can be read by going on reading this range: the same object, and further
    /// on in the same frame or in a frame a little after the range's end.
    fn continues(&self, l: &Location) -> bool {
        l.obj == self.obj
            && ((l.foff == self.last_foff && l.tpos > self.last_tpos)
                || (l.foff >= self.end && l.foff - self.end <= MAX_GAP))
    }

    fn extend(&mut self, l: &Location) {
        self.end = self.end.max(l.foff + l.flen);
        self.last_foff = l.foff;
        self.last_tpos = l.tpos;
    }
}

struct Composer<W: Write> {
    b: tar::Builder<W>,
    backend: Arc<dyn Backend>,
    base: String,
    handle: tokio::runtime::Handle,
    counts: SharedCounts,
    /// The entries of the run being gathered (its files and the directories and symlinks among them).
    run: Vec<Entry>,
    span: Option<Span>,
}

impl<W: Write> Composer<W> {
    fn push(&mut self, e: Entry) -> anyhow::Result<()> {
        match &e.kind {
            Kind::File(f) => {
                match self.span.as_mut() {
                    Some(s) if s.continues(&f.loc) => s.extend(&f.loc),
                    _ => {
                        self.read_run()?;
                        self.span = Some(Span::new(&f.loc));
                    }
                }
                self.run.push(e);
            }
            _ if self.span.is_some() => self.run.push(e),
            _ => return self.synthesize(&e),
        }
        if self.run.len() >= MAX_RUN {
            self.read_run()?;
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.read_run()?;
        self.b.finish()?;
        self.b.into_inner()?.flush()?;
        Ok(())
    }

    fn key(&self, obj: &str) -> anyhow::Result<String> {
        let base = self.base.trim_end_matches('/');
        let key = if base.is_empty() {
            obj.to_string()
        } else {
            format!("{base}/{obj}")
        };
        check_key(&key).with_context(|| format!("the index names object '{obj}'"))?;
        Ok(key)
    }

    /// Reads the gathered run with one ranged read and writes its entries.
    fn read_run(&mut self) -> anyhow::Result<()> {
        let Some(span) = self.span.take() else {
            return Ok(());
        };
        let entries = std::mem::take(&mut self.run);
        let key = self.key(&span.obj)?;
        let range = Range {
            offset: span.start,
            length: Some(span.end - span.start),
        };
        let r = self
            .handle
            .block_on(self.backend.reader(&key, range))
            .with_context(|| format!("reading {key}"))?;
        count(&self.counts, |c| c.ranges += 1);
        let stored = StoredBytes {
            inner: tokio_util::io::SyncIoBridge::new(r),
            counts: self.counts.clone(),
        };
        // Frames follow one another: the decoder reads them as one stream.
        let mut dec = zstd::stream::read::Decoder::new(stored)?;
        let mut pos = span.fupos;
        for e in entries {
            let Kind::File(f) = &e.kind else {
                self.synthesize(&e)?;
                continue;
            };
            let at = || format!("reading '{}' from {key} (frame at {})", e.path, f.loc.foff);
            if f.loc.tpos < pos {
                bail!(
                    "{}: the index puts it before the end of the previous entry",
                    at()
                );
            }
            let skipped = io::copy(&mut (&mut dec).take(f.loc.tpos - pos), &mut io::sink())
                .with_context(at)?;
            if skipped != f.loc.tpos - pos {
                bail!("{}: the range ends before the entry", at());
            }
            let n = copy_entry(&mut dec, &e.path, f, self.b.get_mut()).with_context(at)?;
            count(&self.counts, |c| {
                c.files += 1;
                c.bytes += f.size;
            });
            pos = f.loc.tpos + n;
        }
        Ok(())
    }

    /// A directory's or symlink's tar entry, from its index line.
    fn synthesize(&mut self, e: &Entry) -> anyhow::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        let what = || format!("writing the entry of '{}'", e.path);
        match &e.kind {
            Kind::Dir { mode, mtime } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_mtime((*mtime).max(0) as u64);
                self.b
                    .append_data(&mut h, &e.path, io::empty())
                    .with_context(what)?;
                count(&self.counts, |c| c.dirs += 1);
            }
            Kind::Symlink { link, mtime } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_mtime((*mtime).max(0) as u64);
                self.b
                    .append_link(&mut h, &e.path, link)
                    .with_context(what)?;
                count(&self.counts, |c| c.symlinks += 1);
            }
            Kind::File(_) => bail!("{}: a file is not made from its index line", e.path),
        }
        Ok(())
    }
}

/// Counts the compressed bytes the ranged reads give.
struct StoredBytes<R> {
    inner: R,
    counts: SharedCounts,
}

impl<R: Read> Read for StoredBytes<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        count(&self.counts, |c| c.stored_bytes += n as u64);
        Ok(n)
    }
}

fn padded(n: u64) -> u64 {
    n.div_ceil(512) * 512
}

/// Copies the tar entry of file `path` (its GNU long-name header, if any, its header, data and padding)
/// from `src` to `out`, checking name, size and sha256 against the index. Returns the bytes consumed.
fn copy_entry(
    src: &mut impl Read,
    path: &str,
    f: &FileEntry,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let short = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            anyhow::Error::new(e).context("the stored frames end inside the entry")
        } else {
            anyhow::Error::new(e).context("decompressing")
        }
    };
    let mut block = [0u8; 512];
    let mut consumed = 0u64;
    let mut long_name = None;
    loop {
        src.read_exact(&mut block).map_err(short)?;
        consumed += 512;
        let h = tar::Header::from_byte_slice(&block);
        match h.entry_type() {
            tar::EntryType::GNULongName => {
                let n = h.entry_size()?;
                if n > 1 << 16 {
                    bail!("the archive's long name there is {n} bytes: not an entry of this index");
                }
                let mut data = vec![0u8; padded(n) as usize];
                src.read_exact(&mut data).map_err(short)?;
                consumed += data.len() as u64;
                out.write_all(&block)?;
                out.write_all(&data)?;
                let name = &data[..n as usize];
                let end = name.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                long_name = Some(name[..end].to_vec());
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => break,
            other => bail!(
                "the archive holds a {} there, not this file: the index does not match it",
                kind_name(other)
            ),
        }
    }
    let h = tar::Header::from_byte_slice(&block);
    let name = long_name.unwrap_or_else(|| h.path_bytes().into_owned());
    if name != path.as_bytes() {
        bail!(
            "the archive holds '{}' there: the index does not match it",
            String::from_utf8_lossy(&name)
        );
    }
    let size = h.entry_size()?;
    if size != f.size {
        bail!(
            "the archive's entry has {size} bytes where the index says {}",
            f.size
        );
    }
    out.write_all(&block)?;
    let mut sha = Sha256::new();
    let mut left = size;
    let mut buf = vec![0u8; (size as usize).clamp(512, 256 * 1024)];
    while left > 0 {
        let want = (left as usize).min(buf.len());
        src.read_exact(&mut buf[..want]).map_err(short)?;
        sha.update(&buf[..want]);
        out.write_all(&buf[..want])?;
        left -= want as u64;
    }
    let pad = (padded(size) - size) as usize;
    src.read_exact(&mut buf[..pad]).map_err(short)?;
    out.write_all(&buf[..pad])?;
    let got = hex::encode(sha.finalize());
    if got != f.sha256 {
        bail!(
            "its data has sha256 {got} where the index says {}: the stored archive is corrupt",
            f.sha256
        );
    }
    Ok(consumed + padded(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(obj: &str, foff: u64, flen: u64, tpos: u64) -> Location {
        Location {
            obj: obj.into(),
            foff,
            flen,
            fupos: 0,
            tpos,
        }
    }

    #[test]
    fn runs_follow_frames_of_one_object() {
        let mut s = Span::new(&loc("a", 100, 50, 1000));
        // Further in the same frame, then the next frame.
        assert!(s.continues(&loc("a", 100, 50, 1512)));
        assert!(!s.continues(&loc("a", 100, 50, 1000)), "not backwards");
        assert!(!s.continues(&loc("b", 150, 10, 3000)), "another object");
        assert!(s.continues(&loc("a", 150, 10, 3000)));
        s.extend(&loc("a", 150, 10, 3000));
        assert_eq!((s.start, s.end), (100, 160));
        // A gap of frames without wanted files is read through, up to MAX_GAP.
        assert!(s.continues(&loc("a", 160 + MAX_GAP, 10, 9000)));
        assert!(!s.continues(&loc("a", 161 + MAX_GAP, 10, 9000)));
        assert!(!s.continues(&loc("a", 0, 100, 10)), "an earlier frame");
    }

    fn archive(entries: &[(&str, &[u8])]) -> (Vec<u8>, Vec<u64>) {
        let mut b = tar::Builder::new(Vec::new());
        let mut pos = Vec::new();
        for (name, data) in entries {
            pos.push(b.get_ref().len() as u64);
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        (b.into_inner().unwrap(), pos)
    }

    fn entry(data: &[u8], tpos: u64) -> FileEntry {
        FileEntry {
            size: data.len() as u64,
            mode: 0o644,
            mtime: 0,
            mtime_ns: 0,
            ino: 0,
            ctime: 0,
            ctime_ns: 0,
            sha256: hex::encode(Sha256::digest(data)),
            loc: loc("o", 0, 0, tpos),
        }
    }

    #[test]
    fn entries_are_copied_whole_and_checked() {
        let long = format!("d/{}", "n".repeat(150));
        let (tar, pos) = archive(&[("a", b"hello"), (&long, b"x"), ("e", b"")]);
        for (i, (name, data)) in [("a", &b"hello"[..]), (&long[..], b"x"), ("e", b"")]
            .into_iter()
            .enumerate()
        {
            let mut out = Vec::new();
            let start = pos[i] as usize;
            let n = copy_entry(&mut &tar[start..], name, &entry(data, pos[i]), &mut out).unwrap();
            let end = pos.get(i + 1).map_or(tar.len() - 1024, |p| *p as usize);
            assert_eq!(n as usize, end - start, "{name}");
            assert_eq!(out, &tar[start..end], "{name}");
        }
        let mut out = Vec::new();
        let err = copy_entry(&mut &tar[..], "b", &entry(b"hello", 0), &mut out).unwrap_err();
        assert!(err.to_string().contains("holds 'a'"), "{err}");
        let err = copy_entry(&mut &tar[..], "a", &entry(b"hellO", 0), &mut out).unwrap_err();
        assert!(err.to_string().contains("sha256"), "{err}");
        let err = copy_entry(&mut &tar[..700], "a", &entry(b"hello", 0), &mut out).unwrap_err();
        assert!(format!("{err:#}").contains("end inside"), "{err:#}");
    }
}
