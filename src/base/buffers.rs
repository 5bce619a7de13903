//! Recycled byte buffers for pipelines that hand pieces between threads: a fresh 1 MiB buffer costs
//! page faults and zeroing each time, so spent ones go back to the stage that fills them.

use std::sync::{Arc, LazyLock, Mutex};

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

/// A small stack of spent buffers (shared by a pipeline's stages; cloning shares it).
#[derive(Clone)]
pub struct Pool {
    spent: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Capacity of a fresh buffer.
    size: usize,
    /// Buffers kept at most: the pipeline's depth, so that memory stays bounded.
    keep: usize,
}

impl Pool {
    pub fn new(size: usize, keep: usize) -> Pool {
        Pool {
            spent: Arc::default(),
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
