//! A sink that writes a local file atomically: a temporary file in the same directory, fsynced and
//! renamed into place on `finish`, removed on `abort` or drop.
//!
//! The writes run on a thread of their own, fed 1 MiB pieces through a short queue. A `write` to a
//! file can block for tens of milliseconds when the kernel throttles a writer with many dirty pages,
//! and `sync_file_range` blocks when the disk's queue is full; done on the caller's task, those stalls
//! also stopped what feeds it (hashing, encryption, the archive's channel), one write in flight at a time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use anyhow::Context as _;
use futures::future::BoxFuture;
use serde_json::{Map, Value as Json};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

use super::buffers::Pool;
use super::stream::Sink;

/// Bytes gathered before a piece goes to the writer thread.
const PIECE: usize = 1 << 20;
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

/// Why the writer thread stopped, for the caller's next write.
type Failure = Arc<Mutex<Option<(std::io::ErrorKind, String)>>>;

pub struct FileSink {
    /// Pieces to the writer thread; `None` once finished or aborted.
    tx: Option<PollSender<Vec<u8>>>,
    /// The piece being filled.
    cur: Vec<u8>,
    writer: Option<JoinHandle<std::io::Result<()>>>,
    failure: Failure,
    /// Set when the sink is aborted or dropped: the thread then skips the fsync.
    aborted: Arc<AtomicBool>,
    pool: Pool,
    tmp: Option<tempfile::TempPath>,
    dest: PathBuf,
    bytes: u64,
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

    /// Starts the writer thread on an open temporary file.
    fn start(file: std::fs::File, path: tempfile::TempPath, dest: PathBuf) -> FileSink {
        let (tx, rx) = mpsc::channel(DEPTH);
        let pool = Pool::new(PIECE, DEPTH + 1);
        let (failure, aborted) = (Failure::default(), Arc::new(AtomicBool::new(false)));
        let (f, a, p) = (failure.clone(), aborted.clone(), pool.clone());
        let writer = crate::base::blocking::spawn_blocking(move || {
            let mut rx = rx;
            let r = write_pieces(file, &mut rx, &p, &a);
            if let Err(e) = &r {
                *f.lock().unwrap_or_else(|e| e.into_inner()) = Some((e.kind(), e.to_string()));
            }
            // Only now may the caller see the queue closed: the failure is there to explain it.
            drop(rx);
            r
        });
        FileSink {
            tx: Some(PollSender::new(tx)),
            cur: Vec::new(),
            writer: Some(writer),
            failure,
            aborted,
            pool,
            tmp: Some(path),
            dest,
            bytes: 0,
        }
    }

    /// Why the writer thread stopped taking pieces.
    fn stopped(&self) -> std::io::Error {
        match self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some((kind, msg)) => std::io::Error::new(kind, msg),
            None => std::io::Error::other("file sink closed"),
        }
    }

    /// Stops the writer thread (without its fsync) and waits for it.
    async fn stop(&mut self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.await;
        }
    }
}

/// The writer thread: writes every piece, starts writeback as it goes, has the data made durable in
/// stretches meanwhile (`Syncer`), and fsyncs at the end.
fn write_pieces(
    mut file: std::fs::File,
    rx: &mut mpsc::Receiver<Vec<u8>>,
    pool: &Pool,
    aborted: &AtomicBool,
) -> std::io::Result<()> {
    let (mut written, mut written_back, mut synced) = (0u64, 0u64, 0u64);
    let mut syncer: Option<Syncer> = None;
    while let Some(piece) = rx.blocking_recv() {
        file.write_all(&piece)?;
        written += piece.len() as u64;
        pool.give(piece);
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
            if syncer.as_ref().is_some_and(Syncer::ask) {
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
    file.sync_all()
}

/// Syncs a large file's data on a thread of its own while it is still being written. Writeback alone
/// leaves the disk's own cache to the fsync at the end, which on a virtual disk took ~1 s per GiB after
/// everything had been written back; synced in stretches, that time overlaps with the writing, as
/// restic's fsync of each pack file does. Best effort: the fsync at the end is what makes it durable.
struct Syncer {
    ask: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    fn start(file: &std::fs::File) -> std::io::Result<Syncer> {
        let file = file.try_clone()?;
        let (ask, asked) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("rewind-sync".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    let _ = file.sync_data();
                    #[cfg(test)]
                    STRETCH_SYNCS.fetch_add(1, Ordering::SeqCst);
                }
            })?;
        Ok(Syncer { ask, thread })
    }

    /// Asks for a sync; false when one is still asked for (the next stretch is then asked later).
    fn ask(&self) -> bool {
        self.ask.try_send(()).is_ok()
    }

    fn stop(self) {
        drop(self.ask);
        let _ = self.thread.join();
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Dropped without finish: the thread ends without fsync; dropping `tmp` removes the file.
        if self.tx.is_some() {
            self.aborted.store(true, Ordering::SeqCst);
        }
    }
}

impl AsyncWrite for FileSink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let Some(tx) = this.tx.as_mut() else {
            return Poll::Ready(Err(std::io::Error::other("file sink closed")));
        };
        if this.cur.len() >= PIECE {
            if std::task::ready!(tx.poll_reserve(cx)).is_err() {
                return Poll::Ready(Err(this.stopped()));
            }
            let piece = std::mem::replace(&mut this.cur, this.pool.take());
            if tx.send_item(piece).is_err() {
                return Poll::Ready(Err(this.stopped()));
            }
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
    fn finish(mut self: Box<Self>) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>> {
        Box::pin(async move {
            let tx = self.tx.take().context("file sink already finished")?;
            let last = std::mem::take(&mut self.cur);
            if !last.is_empty() {
                let sent = match tx.get_ref() {
                    Some(s) => s.send(last).await.is_ok(),
                    None => false,
                };
                if !sent {
                    let e = self.stopped();
                    self.stop().await;
                    return Err(
                        anyhow::Error::new(e).context(format!("writing {}", self.dest.display()))
                    );
                }
            }
            drop(tx);
            let written = match self.writer.take() {
                Some(w) => w.await.context("file writer thread")?,
                None => Err(std::io::Error::other("file sink already finished")),
            };
            written.with_context(|| format!("writing and syncing {}", self.dest.display()))?;
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
            self.stop().await;
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
        // An empty file.
        let e = Box::new(FileSink::create(dir.path().join("e")).await.unwrap());
        e.finish().await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("e")).unwrap(), b"");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_write_reaches_the_caller_and_leaves_nothing() {
        // The writer thread gets a descriptor it cannot write (read-only): every write fails, as on a
        // full or broken disk.
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = tempfile::Builder::new()
            .tempfile_in(dir.path())
            .unwrap()
            .into_parts();
        drop(file);
        let ro = std::fs::File::open(&path).unwrap();
        let mut s = Box::new(FileSink::start(ro, path, dir.path().join("x")));
        let data = vec![1u8; 4 << 20];
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
}
