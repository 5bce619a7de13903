//! Reading a child's output pipe in large pieces, with blocking reads on a thread of its own.
//!
//! A dump program writes its output in small `write`s (mariadb-dump: 4 KiB). Read through the async
//! runtime, every one of them wakes a runtime thread (Linux signals an edge-triggered epoll on each write
//! to a pipe), and a reader woken for each ping-pongs with the writer: hundreds of thousands of context
//! switches for a 1 GiB dump, on a machine whose cores the dump and the database server already fill.
//! So the pipe is enlarged (1 MiB, the unprivileged limit), read with plain blocking reads, and after a
//! read that found little, the reader waits a moment for the pipe to fill instead of waking at the next
//! 4 KiB. The writer does not block on that wait: 1 MiB takes several milliseconds to fill even at the
//! speed of a dump.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::stream::BoxReader;

/// Bytes one chunk holds.
const CHUNK: usize = 256 * 1024;
/// A read returning less than this found the pipe nearly empty: the next one waits first.
const PLENTY: usize = 64 * 1024;
/// How long the reader waits after a read that found little.
const PAUSE: Duration = Duration::from_millis(1);
/// The pipe size asked for (Linux; the unprivileged maximum of /proc/sys/fs/pipe-max-size by default).
#[cfg(target_os = "linux")]
const PIPE_BYTES: libc::c_int = 1024 * 1024;

/// Enlarges a pipe's buffer; a refusal (an older kernel, a lower limit) leaves it as it was.
fn enlarge(fd: &OwnedFd) {
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl on a descriptor we own, with an integer argument; failure only returns -1.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// Puts a descriptor the async runtime made non-blocking back into blocking mode.
fn set_blocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: fcntl F_GETFL/F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A reader over the reading end of a pipe (see the module doc). Reading stops, and the pipe is closed,
/// when the stream ends or the returned reader is dropped.
pub fn reader(fd: OwnedFd) -> std::io::Result<BoxReader> {
    set_blocking(&fd)?;
    enlarge(&fd);
    let mut file = std::fs::File::from(fd);
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    std::thread::spawn(move || {
        let mut short = false;
        let mut buf = vec![0u8; CHUNK];
        loop {
            // One read per chunk, sent at once, so a program that prints a line now and then is
            // still read line by line; only the read after a short one waits for the pipe to fill.
            if short {
                std::thread::sleep(PAUSE);
            }
            let n = match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            short = n < PLENTY;
            if tx
                .blocking_send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                .is_err()
            {
                return;
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
}
