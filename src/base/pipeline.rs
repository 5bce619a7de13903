//! What the stages of a streaming pipeline (archive → hash → encryptor → file writer) share: 1 MiB
//! pieces handed on as they are, recycled because a fresh 1 MiB buffer costs page faults and zeroing
//! each time; sending a piece down a stage's queue; and the record of why a stage stopped, which
//! explains the closed queue to the stage before it.

use std::sync::{Arc, LazyLock, Mutex};

use tokio_util::sync::PollSender;

/// Bytes of a pipeline piece: what the archive's channel, the encryptor and the file writer pass on.
pub const PIECE: usize = 1 << 20;

/// The pool of 1 MiB pieces shared by every pipeline: a piece handed down a pipeline (archive → hash →
/// encryptor → file writer) is given back by the stage that spends it, which is not the one that took
/// it. At most 16 wait (18 MiB).
pub fn pieces() -> &'static Pool {
    // Room for a piece filled past PIECE by one more 64 KiB write (the encryptor's output).
    static POOL: LazyLock<Pool> = LazyLock::new(|| Pool::new(PIECE + (128 << 10), 16));
    &POOL
}

/// A small stack of spent buffers.
pub struct Pool {
    spent: Mutex<Vec<Vec<u8>>>,
    /// Capacity of a fresh buffer.
    size: usize,
    /// Buffers kept at most, so that memory stays bounded.
    keep: usize,
}

impl Pool {
    pub fn new(size: usize, keep: usize) -> Pool {
        Pool {
            spent: Mutex::default(),
            size,
            keep,
        }
    }

    /// An empty buffer: a spent one when there is one.
    pub fn take(&self) -> Vec<u8> {
        let mut v = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        v.pop().unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Gives a buffer back for reuse (kept only while fewer than `keep` wait, and only one as large as a
    /// fresh one).
    pub fn give(&self, mut b: Vec<u8>) {
        if b.capacity() < self.size {
            return;
        }
        b.clear();
        let mut v = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < self.keep {
            v.push(b);
        }
    }
}

/// Sends a piece down a stage's queue; false when the queue was closed or its receiving stage is gone.
pub async fn send(tx: Option<&PollSender<Vec<u8>>>, piece: Vec<u8>) -> bool {
    match tx.and_then(|t| t.get_ref()) {
        Some(s) => s.send(piece).await.is_ok(),
        None => false,
    }
}

/// Why a stage stopped: recorded by the stage before it drops its queue's receiving end, read by the
/// stage that then finds the queue closed.
#[derive(Clone, Default)]
pub struct Failure(Arc<Mutex<Option<(std::io::ErrorKind, String)>>>);

impl Failure {
    pub fn set(&self, e: &std::io::Error) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((e.kind(), e.to_string()));
    }

    /// The recorded error, or `otherwise` when the stage stopped without one.
    pub fn error(&self, otherwise: &str) -> std::io::Error {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            Some((kind, msg)) => std::io::Error::new(kind, msg),
            None => std::io::Error::other(otherwise.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_and_at_most_keep_are_kept() {
        let pool = Pool::new(16, 2);
        let mut a = pool.take();
        a.extend_from_slice(b"abc");
        let cap = a.capacity();
        pool.give(a);
        let b = pool.take();
        assert!(
            b.is_empty() && b.capacity() == cap,
            "the spent buffer, emptied"
        );
        for _ in 0..5 {
            pool.give(Vec::with_capacity(16));
        }
        assert_eq!(pool.spent.lock().unwrap().len(), 2);
        pool.take();
        pool.give(Vec::with_capacity(8));
        assert_eq!(
            pool.spent.lock().unwrap().len(),
            1,
            "a smaller one is not kept"
        );
    }
}
