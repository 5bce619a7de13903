//! Reading: decryption on a blocking thread, and `RemoteSeek`, a sync `Read + Seek` over ranged reads.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use tokio::io::AsyncReadExt;

use super::super::{Backend, Range};
use super::ENC_CHUNK;
use crate::base::stream::BoxReader;

/// Runs a sync reader on a blocking thread and hands its bytes over a small channel.
pub(super) fn stream_out(key: String, mut r: Box<dyn Read + Send>) -> BoxReader {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(2);
    crate::base::blocking::spawn_blocking(move || {
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            let mut filled = 0;
            while filled < buf.len() {
                match r.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(std::io::Error::other(format!(
                            "{key}: decryption failed (damaged or tampered object): {e}"
                        ))));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            if tx.blocking_send(Ok(buf.into())).is_err() {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Box::pin(tokio_util::io::StreamReader::new(stream))
}

/// A sync `Read + Seek` over an object of a backend, for age's seeking `StreamReader`, used on a
/// blocking thread. Reads go through the backend's ranged readers; a seek to another offset drops the
/// open one and the next read opens a window at the new offset (the first window is small: the
/// header; after a seek, the frames the caller asked for; then doubling up to 16 MiB).
pub(super) struct RemoteSeek {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) key: String,
    pub(super) handle: tokio::runtime::Handle,
    /// The object's size (ciphertext); `None` for whole reads, which never seek.
    pub(super) size: Option<u64>,
    pub(super) pos: u64,
    pub(super) cur: Option<(BoxReader, u64)>,
    pub(super) buf: Vec<u8>,
    pub(super) buf_pos: usize,
    /// The length of the next window; `None`: to the end.
    pub(super) next_window: Option<u64>,
    /// Ciphertext bytes wanted after the first seek.
    pub(super) hint: Option<u64>,
    pub(super) opens: u32,
}

pub(super) const MAX_WINDOW: u64 = 16 * 1024 * 1024;

impl Read for RemoteSeek {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.buf_pos < self.buf.len() {
                let n = out.len().min(self.buf.len() - self.buf_pos);
                out[..n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
                self.buf_pos += n;
                self.pos += n as u64;
                return Ok(n);
            }
            if let Some(size) = self.size
                && self.pos >= size
            {
                return Ok(0);
            }
            if self.cur.is_none() {
                let len = match (self.next_window, self.size) {
                    (Some(w), Some(size)) => Some(w.min(size - self.pos)),
                    (w, _) => w,
                };
                let fut = self.backend.reader(
                    &self.key,
                    Range {
                        offset: self.pos,
                        length: len,
                    },
                );
                let r = self.handle.block_on(fut).map_err(std::io::Error::other)?;
                self.opens += 1;
                self.next_window = self
                    .next_window
                    .map(|w| (w * 2).clamp(ENC_CHUNK, MAX_WINDOW));
                self.cur = Some((r, len.unwrap_or(u64::MAX)));
            }
            let (r, left) = self.cur.as_mut().expect("opened");
            if *left == 0 {
                self.cur = None;
                continue;
            }
            let want = (*left).min(64 * 1024) as usize;
            self.buf.resize(want, 0);
            let n = self.handle.block_on(r.read(&mut self.buf[..want]))?;
            self.buf_pos = 0;
            if n == 0 {
                self.buf.clear();
                self.cur = None;
                if self.size.is_none() || len_left(self.size, self.pos) == 0 {
                    return Ok(0);
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{}: object ended early", self.key),
                ));
            }
            self.buf.truncate(n);
            *left -= n as u64;
        }
    }
}

pub(super) fn len_left(size: Option<u64>, pos: u64) -> u64 {
    size.map(|s| s.saturating_sub(pos)).unwrap_or(u64::MAX)
}

impl Seek for RemoteSeek {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(o) => o as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
            SeekFrom::End(d) => {
                let size = self.size.ok_or_else(|| {
                    std::io::Error::other(format!("{}: size unknown for seeking", self.key))
                })?;
                size as i128 + d as i128
            }
        };
        if new < 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start",
            ));
        }
        let new = new as u64;
        if new == self.pos {
            return Ok(new);
        }
        // Within what is buffered: move there.
        let remaining = (self.buf.len() - self.buf_pos) as u64;
        if new > self.pos && new - self.pos <= remaining {
            self.buf_pos += (new - self.pos) as usize;
            self.pos = new;
            return Ok(new);
        }
        self.cur = None;
        self.buf.clear();
        self.buf_pos = 0;
        self.pos = new;
        if let Some(h) = self.hint.take() {
            self.next_window = Some(h.clamp(ENC_CHUNK, MAX_WINDOW));
        } else if self.next_window.is_some() {
            self.next_window = Some(ENC_CHUNK);
        }
        Ok(new)
    }
}
