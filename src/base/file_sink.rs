//! A sink that writes a local file atomically: a temporary file in the same directory, fsynced and
//! renamed into place on `finish`, removed on `abort` or drop.
//!
//! A file that outgrows one 1 MiB piece is written on a thread of its own, fed pieces through a short
//! queue. A `write` can block for tens of milliseconds when the kernel throttles a writer with many dirty
//! pages, and `sync_file_range` blocks when the disk's queue is full; done on the caller's task, those
//! stalls also stopped what feeds it (hashing, encryption, the archive's channel). A smaller file (a
//! manifest, a lease, most objects) is written and synced in one blocking call at `finish`: no thread
//! is held for it, however many such files are open at once. A large file's pages leave the page
//! cache as its stretches are synced (`Syncer`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use anyhow::Context as _;
use futures::future::BoxFuture;
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

use super::pipeline::{Failure, PIECE, pieces};
use super::stream::Sink;

/// Pieces queued for the writer thread: bounds memory to a few MiB per open file.
const DEPTH: usize = 2;
/// Large files start their writeback to disk every this many bytes while they are written, so that the
/// fsync at `finish` waits for the last stretch only (a 1 GiB archive otherwise spent ~1.2 s in it).
const WRITEBACK_EVERY: u64 = if cfg!(test) { 1 << 20 } else { 32 << 20 };
/// Large files have their data synced in stretches of this many bytes while they are written (`Syncer`).
/// (The unit tests use stretches of 1 and 2 MiB, so that their few MiB go through every path.)
const SYNC_EVERY: u64 = if cfg!(test) { 2 << 20 } else { 128 << 20 };

/// Stretch syncs done, for the unit tests.
#[cfg(test)]
static STRETCH_SYNCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub struct FileSink {
    /// The temporary file until a writer thread takes it (or `finish` writes it).
    file: Option<std::fs::File>,
    /// Set once the file outgrew one piece.
    writer: Option<Writer>,
    /// The piece being filled.
    cur: Vec<u8>,
    tmp: Option<tempfile::TempPath>,
    dest: PathBuf,
    bytes: u64,
}

/// The writer thread of a large file and what talks to it.
struct Writer {
    /// Pieces to the thread; `None` once finished or aborted.
    tx: Option<PollSender<Vec<u8>>>,
    /// The thread's result: written, synced (or stopped early).
    done: Option<oneshot::Receiver<std::io::Result<()>>>,
    failure: Failure,
    /// Set when the sink is aborted or dropped: the thread then skips the fsync.
    aborted: Arc<AtomicBool>,
}

impl Writer {
    fn start(file: std::fs::File) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel(DEPTH);
        let (done_tx, done) = oneshot::channel();
        let (failure, aborted) = (Failure::default(), Arc::new(AtomicBool::new(false)));
        let (f, a) = (failure.clone(), aborted.clone());
        std::thread::Builder::new()
            .name("rewind-write".into())
            .spawn(move || {
                let mut rx = rx;
                let r = write_pieces(file, &mut rx, &a);
                if let Err(e) = &r {
                    f.set(e);
                }
                // Only now may the caller see the queue closed: the failure is there to explain it.
                drop(rx);
                let _ = done_tx.send(r);
            })?;
        Ok(Writer {
            tx: Some(PollSender::new(tx)),
            done: Some(done),
            failure,
            aborted,
        })
    }

    /// Why the thread stopped taking pieces.
    fn stopped(&self) -> std::io::Error {
        self.failure.error("file sink closed")
    }

    /// Sends the last piece, ends the queue and waits for the thread's writes and fsync.
    async fn finish(&mut self, last: Vec<u8>) -> std::io::Result<()> {
        let tx = self
            .tx
            .take()
            .ok_or_else(|| std::io::Error::other("file sink already finished"))?;
        if !last.is_empty() && !super::pipeline::send(Some(&tx), last).await {
            let e = self.stopped();
            self.stop().await;
            return Err(e);
        }
        drop(tx);
        match self.done.take() {
            Some(d) => d
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("file writer thread ended"))),
            None => Err(std::io::Error::other("file sink already finished")),
        }
    }

    /// Stops the thread (without its fsync) and waits for it.
    async fn stop(&mut self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.tx.take();
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Dropped without finish: the thread ends without fsync; dropping `tmp` removes the file.
        if self.tx.is_some() {
            self.aborted.store(true, Ordering::SeqCst);
        }
    }
}

impl FileSink {
    pub async fn create(dest: impl Into<PathBuf>) -> anyhow::Result<FileSink> {
        let dest = dest.into();
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir)
            .await
            .with_context(|| format!("creating directory {}", dir.display()))?;
        let dir = dir.to_path_buf();
        let tmp = crate::base::blocking::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix(".rewind-tmp-")
                .tempfile_in(&dir)
        })
        .await?
        .with_context(|| format!("creating a temporary file beside {}", dest.display()))?;
        let (file, path) = tmp.into_parts();
        Ok(FileSink::start(file, path, dest))
    }

    /// A sink over an open temporary file.
    fn start(file: std::fs::File, path: tempfile::TempPath, dest: PathBuf) -> FileSink {
        FileSink {
            file: Some(file),
            writer: None,
            cur: Vec::new(),
            tmp: Some(path),
            dest,
            bytes: 0,
        }
    }

    /// The writer thread, started when the file outgrows one piece.
    fn writer(&mut self) -> std::io::Result<&mut Writer> {
        if self.writer.is_none() {
            let file = self
                .file
                .take()
                .ok_or_else(|| std::io::Error::other("file sink closed"))?;
            self.writer = Some(Writer::start(file)?);
        }
        Ok(self.writer.as_mut().expect("writer just started"))
    }

    /// Hands a piece to the writer thread as it is.
    async fn send(&mut self, piece: Vec<u8>) -> std::io::Result<()> {
        let w = self.writer()?;
        if super::pipeline::send(w.tx.as_ref(), piece).await {
            Ok(())
        } else {
            Err(w.stopped())
        }
    }

    /// Writes and syncs what there is: through the writer thread, or for a small file in one call.
    async fn write_out(&mut self) -> std::io::Result<()> {
        let last = std::mem::take(&mut self.cur);
        if let Some(w) = self.writer.as_mut() {
            return w.finish(last).await;
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("file sink already finished"))?;
        crate::base::blocking::spawn_blocking(move || {
            file.write_all(&last)?;
            file.sync_all()
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }
}

/// The writer thread: writes every piece, starts writeback as it goes, has the data made durable in
/// stretches meanwhile (`Syncer`), and fsyncs at the end.
fn write_pieces(
    mut file: std::fs::File,
    rx: &mut mpsc::Receiver<Vec<u8>>,
    aborted: &AtomicBool,
) -> std::io::Result<()> {
    let (mut written, mut written_back, mut synced) = (0u64, 0u64, 0u64);
    let mut syncer: Option<Syncer> = None;
    while let Some(piece) = rx.blocking_recv() {
        file.write_all(&piece)?;
        written += piece.len() as u64;
        pieces().give(piece);
        if written - written_back >= WRITEBACK_EVERY {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open descriptor; SYNC_FILE_RANGE_WRITE only starts writeback of the dirty
            // pages from `written_back` on (nbytes 0: to the end) and does not wait for it to finish. A
            // failure changes nothing: the fsync at the end still makes the file durable.
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    written_back as libc::off64_t,
                    0,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            written_back = written;
        }
        if written - synced >= SYNC_EVERY {
            if syncer.is_none() {
                syncer = Some(Syncer::start(&file)?);
            }
            if syncer.as_ref().is_some_and(|s| s.ask(written)) {
                synced = written;
            }
        }
    }
    if let Some(s) = syncer {
        s.stop();
    }
    if aborted.load(Ordering::SeqCst) {
        return Ok(());
    }
    file.sync_all()?;
    // All of it is on disk now: none of it needs to stay in the page cache (see `Syncer`).
    drop_cached(&file, None);
    Ok(())
}

/// Drops a file's first `len` bytes (all of them with `None`) from the page cache, once they are synced:
/// only clean pages go. Best effort: a failure leaves them cached, nothing more.
fn drop_cached(file: &std::fs::File, len: Option<std::num::NonZeroU64>) {
    let _ = rustix::fs::fadvise(file, 0, len, rustix::fs::Advice::DontNeed);
}

/// Syncs a large file's data on a thread of its own while it is still being written. Writeback alone
/// leaves the disk's own cache to the fsync at the end, which on a virtual disk took ~1 s per GiB after
/// everything had been written back; synced in stretches, that time overlaps with the writing, as
/// restic's fsync of each pack file does. Best effort: the fsync at the end is what makes it durable.
///
/// Once a stretch is synced its pages are dropped from the page cache (`POSIX_FADV_DONTNEED`): an
/// archive is not read again soon, so caching it would only evict what the machine is using, and the
/// pages freed are the ones the next stretch is written into. Fresh pages are what writing costs on a
/// virtual machine: a gigabyte written into pages the host had taken back cost ~1.4 s of CPU, into
/// recycled ones ~0.6 s.
struct Syncer {
    ask: std::sync::mpsc::SyncSender<u64>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    fn start(file: &std::fs::File) -> std::io::Result<Syncer> {
        let file = file.try_clone()?;
        let (ask, asked) = std::sync::mpsc::sync_channel::<u64>(1);
        let thread = std::thread::Builder::new()
            .name("rewind-sync".into())
            .spawn(move || {
                while let Ok(upto) = asked.recv() {
                    if file.sync_data().is_ok() {
                        // Only what the sync covered is clean and can go.
                        drop_cached(&file, std::num::NonZeroU64::new(upto));
                    }
                    #[cfg(test)]
                    STRETCH_SYNCS.fetch_add(1, Ordering::SeqCst);
                }
            })?;
        Ok(Syncer { ask, thread })
    }

    /// Asks for the first `upto` bytes to be synced (and dropped from the cache); false when a sync is
    /// still asked for (the next stretch is then asked later).
    fn ask(&self, upto: u64) -> bool {
        self.ask.try_send(upto).is_ok()
    }

    fn stop(self) {
        drop(self.ask);
        let _ = self.thread.join();
    }
}

impl AsyncWrite for FileSink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.cur.len() >= PIECE {
            if let Err(e) = this.writer() {
                return Poll::Ready(Err(e));
            }
            let w = this.writer.as_mut().expect("writer started");
            let Some(tx) = w.tx.as_mut() else {
                return Poll::Ready(Err(std::io::Error::other("file sink closed")));
            };
            if std::task::ready!(tx.poll_reserve(cx)).is_err() {
                return Poll::Ready(Err(w.stopped()));
            }
            let piece = std::mem::replace(&mut this.cur, pieces().take());
            if tx.send_item(piece).is_err() {
                return Poll::Ready(Err(w.stopped()));
            }
        } else if this.file.is_none() && this.writer.is_none() {
            return Poll::Ready(Err(std::io::Error::other("file sink closed")));
        }
        let n = data.len().min(PIECE - this.cur.len());
        this.cur.extend_from_slice(&data[..n]);
        this.bytes += n as u64;
        Poll::Ready(Ok(n))
    }

    /// Nothing is visible before `finish` (a temporary file), so there is nothing to push further.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Sink for FileSink {
    /// A large piece goes to the writer thread as it is (after what was written before it).
    fn write_piece(&mut self, piece: Vec<u8>) -> BoxFuture<'_, std::io::Result<()>> {
        Box::pin(async move {
            if piece.len() < PIECE / 4 || (self.file.is_none() && self.writer.is_none()) {
                self.write_all(&piece).await?;
                pieces().give(piece);
                return Ok(());
            }
            if !self.cur.is_empty() {
                let before = std::mem::replace(&mut self.cur, pieces().take());
                self.send(before).await?;
            }
            self.bytes += piece.len() as u64;
            self.send(piece).await
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>> {
        Box::pin(async move {
            self.write_out()
                .await
                .with_context(|| format!("writing and syncing {}", self.dest.display()))?;
            let tmp = self.tmp.take().context("file sink already finished")?;
            let dest = self.dest.clone();
            crate::base::blocking::spawn_blocking(move || tmp.persist(&dest))
                .await?
                .with_context(|| format!("renaming into {}", self.dest.display()))?;
            let mut info = Map::new();
            info.insert("path".into(), Json::String(self.dest.display().to_string()));
            info.insert("bytes".into(), Json::from(self.bytes));
            Ok(info)
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(w) = self.writer.as_mut() {
                w.stop().await;
            }
            // Dropping the TempPath removes the temporary file.
            self.tmp.take();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(flavor = "multi_thread")]
    async fn writes_in_pieces_then_renames_and_abort_or_drop_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = Box::new(FileSink::create(dir.path().join("a/f")).await.unwrap());
        // Odd-sized writes across piece boundaries.
        for part in data.chunks(77_777) {
            s.write_all(part).await.unwrap();
        }
        assert!(
            !dir.path().join("a/f").exists(),
            "nothing visible before finish"
        );
        let syncs = STRETCH_SYNCS.load(Ordering::SeqCst);
        let info = s.finish().await.unwrap();
        assert!(
            STRETCH_SYNCS.load(Ordering::SeqCst) > syncs,
            "5 MB in 2 MiB stretches: synced on the way"
        );
        assert_eq!(info["bytes"], data.len());
        assert_eq!(std::fs::read(dir.path().join("a/f")).unwrap(), data);

        let mut s = Box::new(FileSink::create(dir.path().join("b")).await.unwrap());
        s.write_all(&data).await.unwrap();
        s.abort().await;
        let mut d = Box::new(FileSink::create(dir.path().join("c")).await.unwrap());
        d.write_all(&data).await.unwrap();
        drop(d);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["a"], "aborted and dropped sinks leave nothing");
        // Small files never start a writer thread: written at finish, or not at all.
        let mut small = Box::new(FileSink::create(dir.path().join("s")).await.unwrap());
        small.write_all(b"aborted").await.unwrap();
        assert!(small.writer.is_none());
        small.abort().await;
        assert!(!dir.path().join("s").exists());
        let e = Box::new(FileSink::create(dir.path().join("e")).await.unwrap());
        e.finish().await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("e")).unwrap(), b"");
        let mut t = Box::new(FileSink::create(dir.path().join("t")).await.unwrap());
        t.write_all(b"a manifest").await.unwrap();
        assert_eq!(t.finish().await.unwrap()["bytes"], 10);
        assert_eq!(std::fs::read(dir.path().join("t")).unwrap(), b"a manifest");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn owned_pieces_and_copied_writes_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..7_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut s = Box::new(FileSink::create(dir.path().join("m")).await.unwrap());
        // Small copied writes, then whole pieces handed over (small and large), alternating.
        let mut at = 0;
        for (k, n) in [1000usize, 1 << 20, 5, 300_000, 2_000_000, 77, 1_500_000]
            .into_iter()
            .cycle()
            .enumerate()
        {
            let end = (at + n).min(data.len());
            if k % 2 == 0 {
                s.write_all(&data[at..end]).await.unwrap();
            } else {
                s.write_piece(data[at..end].to_vec()).await.unwrap();
            }
            at = end;
            if at == data.len() {
                break;
            }
        }
        assert_eq!(s.finish().await.unwrap()["bytes"], data.len());
        assert_eq!(std::fs::read(dir.path().join("m")).unwrap(), data);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_write_reaches_the_caller_and_leaves_nothing() {
        // The sink gets a descriptor it cannot write (read-only): every write fails, as on a full or
        // broken disk. A small file (written at finish) and a large one (the writer thread).
        for size in [10, 4 << 20] {
            failed_write(size).await;
        }
    }

    async fn failed_write(size: usize) {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = tempfile::Builder::new()
            .tempfile_in(dir.path())
            .unwrap()
            .into_parts();
        drop(file);
        let ro = std::fs::File::open(&path).unwrap();
        let mut s = Box::new(FileSink::start(ro, path, dir.path().join("x")));
        let data = vec![1u8; size];
        // The error shows at a later write or at finish, whichever comes first; callers abort on it.
        let err = match s.write_all(&data).await {
            Err(e) => {
                s.abort().await;
                anyhow::Error::new(e)
            }
            Ok(()) => s.finish().await.unwrap_err(),
        };
        assert!(
            format!("{err:#}").contains("Bad file descriptor"),
            "{err:#}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "the temporary file is removed, nothing renamed"
        );
    }

    /// Bytes of a file in the page cache (mapped and asked with `mincore`).
    fn cached_bytes(path: &Path) -> usize {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(path).unwrap();
        let len = f.metadata().unwrap().len() as usize;
        if len == 0 {
            return 0;
        }
        // SAFETY: sysconf reads a constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mut resident = vec![0u8; len.div_ceil(page)];
        // SAFETY: a read-only shared mapping of a file the test wrote, never dereferenced: mincore only
        // reports which of its pages are cached, into a vector of one byte per page; unmapped before return.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(libc::mincore(p, len, resident.as_mut_ptr()), 0);
            libc::munmap(p, len);
        }
        resident.iter().filter(|b| *b & 1 == 1).count() * page
    }

    /// A large file leaves the page cache stretch by stretch while it is written, and wholly once
    /// finished; its bytes are all there.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_large_file_leaves_the_page_cache_as_it_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        let data: Vec<u8> = (0..9_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut s = Box::new(FileSink::create(&dest).await.unwrap());
        s.write_all(&data[..6_000_000]).await.unwrap();
        let tmp = s.tmp.as_ref().unwrap().to_path_buf();
        // The writer thread has 4 MiB and more by now (two pieces may still be queued): its first
        // 2 MiB stretch is synced and dropped soon after. (Later stretches may stay until the next
        // ask: an ask made while a sync is still asked for is skipped.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let len = || std::fs::metadata(&tmp).unwrap().len() as usize;
        while len() < 4 << 20 || cached_bytes(&tmp) + (2 << 20) > len() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {} bytes still cached while writing",
                cached_bytes(&tmp),
                len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        s.write_all(&data[6_000_000..]).await.unwrap();
        s.finish().await.unwrap();
        assert_eq!(cached_bytes(&dest), 0, "nothing cached once finished");
        assert_eq!(std::fs::read(&dest).unwrap(), data);
    }
}
