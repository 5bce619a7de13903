//! Client-side encryption of store objects with age (<https://age-encryption.org>): `EncryptedBackend`
//! wraps any backend so that every object a procedure writes is an age file (X25519 recipients or a
//! scrypt passphrase) and every object it reads is decrypted, streamed with bounded memory.
//!
//! - `writer`: age's STREAM encryption (64 KiB chunks) in front of the inner writer, on its own thread.
//! - `reader(key, whole)`: streamed decryption on a blocking thread.
//! - `reader(key, Range)`: the range is over PLAINTEXT offsets. age's `StreamReader` seeks when its
//!   input does, so the input here is `RemoteSeek`, a sync `Read + Seek` over the inner backend's ranged
//!   readers (a seek reopens at the new offset): a one-file restore reads the header plus about the
//!   frames that hold the range.
//! - `get_versioned`, `create_if_absent`, `replace_if`: in memory (manifests and leases are small).
//! - `list`, `head`, `delete`, `copy`, `delete_if`, `leftovers`: passed through; sizes are CIPHERTEXT
//!   sizes (the plaintext plus ~200 bytes of header and 16 bytes per 64 KiB).
//!
//! Without keys a store is opened as `PlainGuard`, which passes everything through but turns reading
//! an age file (an object starting with `age-encryption.org/v1`) into "KEY is encrypted (age): give
//! identity= or passphrase=".

mod guard;
mod keys;
mod seek;
mod sink;

pub use guard::PlainGuard;
pub use keys::{Keys, new_identity_file, public_keys};
use seek::{RemoteSeek, stream_out};
use sink::EncryptingSink;

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use super::{Backend, Leftovers, ObjectMeta, OpenOpts, Range, Versioned};
use crate::base::stream::{BoxReader, BoxSink};

/// What every age file starts with.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

/// scrypt work factor (log2 N) of passphrase-encrypted objects. age's own default aims at ~1 s per
/// object; every manifest, index, lease and archive is its own age file here, so a lower one is used
/// (2^16: ~64 MiB of memory and ~0.1-0.2 s per object).
const SCRYPT_LOG_N: u8 = 16;

/// Plaintext bytes per STREAM chunk, and their size once encrypted (+16 bytes of tag).
const CHUNK: u64 = 64 * 1024;
const ENC_CHUNK: u64 = CHUNK + 16;

/// Opens `inner` with the keys of `opts` or the environment: encrypted when there are keys, guarded
/// (a clear error on reading an age file) when not.
pub fn wrap(inner: Arc<dyn Backend>, opts: &OpenOpts) -> anyhow::Result<Arc<dyn Backend>> {
    Ok(match Keys::from_opts(opts)? {
        Some(keys) => Arc::new(EncryptedBackend {
            inner,
            keys: Arc::new(keys),
        }),
        None => Arc::new(PlainGuard { inner }),
    })
}

/// The encrypting wrapper.
pub struct EncryptedBackend {
    inner: Arc<dyn Backend>,
    keys: Arc<Keys>,
}

impl EncryptedBackend {
    pub fn new(inner: Arc<dyn Backend>, keys: Keys) -> Self {
        EncryptedBackend {
            inner,
            keys: Arc::new(keys),
        }
    }
}

impl Backend for EncryptedBackend {
    fn url(&self) -> String {
        self.inner.url()
    }

    fn encrypted(&self) -> bool {
        true
    }

    fn writer(&self, key: &str) -> BoxFuture<'static, anyhow::Result<BoxSink>> {
        let keys = self.keys.clone();
        let inner = self.inner.writer(key);
        Box::pin(async move {
            // A passphrase's scrypt runs here: off the async threads.
            let enc = crate::base::blocking::spawn_blocking(move || keys.encryptor()).await??;
            let sink = inner.await?;
            Ok(Box::new(EncryptingSink::start(enc, sink).await?) as BoxSink)
        })
    }

    fn reader(&self, key: &str, range: Range) -> BoxFuture<'static, anyhow::Result<BoxReader>> {
        let inner = self.inner.clone();
        let keys = self.keys.clone();
        let key = key.to_string();
        Box::pin(async move {
            let handle = tokio::runtime::Handle::current();
            let whole = range.offset == 0 && range.length.is_none();
            let size = if whole {
                None
            } else {
                Some(
                    inner
                        .head(&key)
                        .await?
                        .ok_or_else(|| anyhow!("{key}: no such object"))?
                        .size,
                )
            };
            // The ciphertext bytes that hold the range: the frames from the one with `offset`.
            let hint = range.length.map(|l| {
                let first = range.offset / CHUNK;
                let last = (range.offset + l.max(1) - 1) / CHUNK;
                (last - first + 1) * ENC_CHUNK
            });
            let k2 = key.clone();
            let opened = crate::base::blocking::spawn_blocking(move || -> anyhow::Result<_> {
                let remote = RemoteSeek {
                    backend: inner,
                    key: k2.clone(),
                    handle,
                    size,
                    pos: 0,
                    cur: None,
                    buf: Vec::new(),
                    buf_pos: 0,
                    next_window: if whole { None } else { Some(4096) },
                    hint,
                    opens: 0,
                };
                let mut r = keys.decrypt(&k2, remote)?;
                if range.offset > 0 {
                    r.seek(SeekFrom::Start(range.offset))
                        .with_context(|| format!("{k2}: seeking to {}", range.offset))?;
                }
                Ok(r)
            })
            .await
            .map_err(|e| anyhow!("decrypting {key}: {e}"))??;
            let limited: Box<dyn Read + Send> = match range.length {
                Some(l) => Box::new(opened.take(l)),
                None => Box::new(opened),
            };
            Ok(stream_out(key, limited))
        })
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, anyhow::Result<Vec<ObjectMeta>>> {
        self.inner.list(prefix)
    }

    fn head(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<ObjectMeta>>> {
        self.inner.head(key)
    }

    fn delete(&self, keys: Vec<String>) -> BoxFuture<'static, anyhow::Result<usize>> {
        self.inner.delete(keys)
    }

    fn copy(&self, from: &str, to: &str) -> BoxFuture<'static, anyhow::Result<()>> {
        self.inner.copy(from, to)
    }

    fn get_versioned(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<Versioned>>> {
        let fut = self.inner.get_versioned(key);
        let keys = self.keys.clone();
        let key = key.to_string();
        Box::pin(async move {
            let Some(v) = fut.await? else {
                return Ok(None);
            };
            let body =
                crate::base::blocking::spawn_blocking(move || keys.decrypt_bytes(&key, &v.body))
                    .await??;
            Ok(Some(Versioned {
                body,
                version: v.version,
            }))
        })
    }

    fn create_if_absent(
        &self,
        key: &str,
        data: bytes::Bytes,
    ) -> BoxFuture<'static, anyhow::Result<Option<String>>> {
        let inner = self.inner.clone();
        let keys = self.keys.clone();
        let key = key.to_string();
        Box::pin(async move {
            let enc =
                crate::base::blocking::spawn_blocking(move || keys.encrypt_bytes(&data)).await??;
            inner.create_if_absent(&key, enc).await
        })
    }

    fn replace_if(
        &self,
        key: &str,
        data: bytes::Bytes,
        version: &str,
    ) -> BoxFuture<'static, anyhow::Result<Option<String>>> {
        let inner = self.inner.clone();
        let keys = self.keys.clone();
        let key = key.to_string();
        let version = version.to_string();
        Box::pin(async move {
            let enc =
                crate::base::blocking::spawn_blocking(move || keys.encrypt_bytes(&data)).await??;
            inner.replace_if(&key, enc, &version).await
        })
    }

    fn delete_if(&self, key: &str, version: &str) -> BoxFuture<'static, anyhow::Result<bool>> {
        self.inner.delete_if(key, version)
    }

    fn leftovers(
        &self,
        prefix: &str,
        older_than: std::time::Duration,
        remove: bool,
    ) -> BoxFuture<'static, anyhow::Result<Leftovers>> {
        self.inner.leftovers(prefix, older_than, remove)
    }
}
