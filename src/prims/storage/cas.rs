//! Content-addressed puts (`store:put_cas`): the input is hashed (a reader is spooled to a temporary
//! file on the way) and stored at `<prefix>/<aa>/<sha256>` unless that key exists, optionally
//! compressed with gzip or zstd (rewind.codec).

use std::sync::Arc;

use anyhow::Context;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Backend, join, open_file_reader};
use crate::base::stream::BoxReader;
pub use crate::prims::codec::Compression;

/// The content-addressed key of a sha256 under `prefix`: `<prefix>/<aa>/<sha256>`.
pub fn cas_key(prefix: &str, sha: &str) -> String {
    join(prefix, &format!("{}/{}", &sha[..2], sha))
}

/// Hashes a reader while spooling it to a temporary file (bounded memory).
async fn spool_and_hash(
    mut reader: BoxReader,
) -> anyhow::Result<(tempfile::TempPath, String, u64)> {
    let tmp = crate::base::blocking::spawn_blocking(|| {
        tempfile::Builder::new().prefix(".rewind-cas-").tempfile()
    })
    .await??;
    let (file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).await.context("reading the input")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .await
            .context("writing a temporary spool file")?;
        size += n as u64;
    }
    file.flush().await?;
    Ok((path, hex::encode(hasher.finalize()), size))
}

/// Hashes a file by streaming it.
async fn hash_file(path: std::path::PathBuf) -> anyhow::Result<(String, u64)> {
    crate::base::blocking::spawn_blocking(move || -> anyhow::Result<(String, u64)> {
        let mut f =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut f, &mut hasher)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok((hex::encode(hasher.finalize()), size))
    })
    .await?
}

/// Where a content-addressed object goes and how it is written.
pub struct CasTarget {
    pub prefix: String,
    pub compression: Compression,
    /// The codec's level (its default when None).
    pub level: Option<i32>,
    /// Appended to the key (`.gz`), so the object names its encoding.
    pub suffix: String,
}

impl CasTarget {
    fn compress(&self, input: BoxReader) -> BoxReader {
        let settings = crate::prims::codec::Settings {
            level: self.level,
            ..crate::prims::codec::Settings::new(self.compression)
        };
        crate::prims::codec::compress(input, settings)
    }
}

/// `put_cas` when the sha256 is known beforehand (a stream named by its hash): the key is checked first,
/// so an object already stored costs one HEAD and its input is never opened; otherwise `open` gives the
/// input, which streams through a check of its sha256 (and size) into the store, no spool file. A
/// mismatch fails the read at the end, so the store never commits the object.
pub async fn put_cas_known<F, Fut>(
    backend: Arc<dyn Backend>,
    target: &CasTarget,
    sha: &str,
    size: Option<u64>,
    open: F,
) -> anyhow::Result<Map<String, Json>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<BoxReader>>,
{
    let sha = sha.to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!(crate::base::errors::UsageError(format!(
            "store:put_cas: sha256 must be 64 hex digits, got {sha:?}"
        )));
    }
    let key = format!("{}{}", cas_key(&target.prefix, &sha), target.suffix);
    let mut out = Map::new();
    out.insert("sha256".into(), Json::String(sha.clone()));
    out.insert("key".into(), Json::String(key.clone()));
    out.insert(
        "compression".into(),
        Json::String(target.compression.name().into()),
    );
    if backend.head(&key).await?.is_some() {
        if let Some(n) = size {
            out.insert("size".into(), Json::from(n));
        }
        out.insert("new".into(), Json::Bool(false));
        return Ok(out);
    }
    let (checked, digest) = crate::prims::hash::HashReader::new(open().await?, key.clone());
    let checked: BoxReader = Box::pin(checked.expect(size, Some(sha.clone())));
    let info = backend.put(&key, target.compress(checked)).await?;
    if let Some(b) = info.get("bytes") {
        out.insert("stored_size".into(), b.clone());
    }
    let size = digest.lock().map(|d| d.size).unwrap_or_default();
    out.insert("size".into(), Json::from(size));
    out.insert("new".into(), Json::Bool(true));
    Ok(out)
}

/// `put_cas`: content-addressed put. Returns `{sha256, key, new, size, stored_size?, compression}`.
pub async fn put_cas(
    backend: Arc<dyn Backend>,
    input: CasInput,
    target: &CasTarget,
) -> anyhow::Result<Map<String, Json>> {
    // Keep the spool file alive until the upload is done.
    let mut _spool = None;
    let (sha, size, source): (String, u64, CasSource) = match input {
        CasInput::Bytes(b) => {
            let sha = hex::encode(Sha256::digest(&b));
            let n = b.len() as u64;
            (sha, n, CasSource::Bytes(b))
        }
        CasInput::File(p) => {
            let (sha, n) = hash_file(p.clone()).await?;
            (sha, n, CasSource::File(p))
        }
        CasInput::Reader(r) => {
            let (tmp, sha, n) = spool_and_hash(r).await?;
            let p = tmp.to_path_buf();
            _spool = Some(tmp);
            (sha, n, CasSource::File(p))
        }
    };
    // The hash is known now: the rest is the known-hash put (HEAD, then a checked upload).
    put_cas_known(backend, target, &sha, Some(size), || async move {
        Ok(match source {
            CasSource::Bytes(b) => Box::pin(std::io::Cursor::new(b)) as BoxReader,
            CasSource::File(p) => open_file_reader(&p).await?,
        })
    })
    .await
}

pub enum CasInput {
    Bytes(Vec<u8>),
    File(std::path::PathBuf),
    Reader(BoxReader),
}

enum CasSource {
    Bytes(Vec<u8>),
    File(std::path::PathBuf),
}
