//! The local backend: a directory tree (`file:///path` or a plain path). Writes are atomic (a temp file
//! in the destination directory, renamed on commit, then the directory synced). Listing walks
//! directories lazily in key order (`walk`). Conditional writes (`create_if_absent`, `replace_if`,
//! `delete_if`) and the leftovers of killed writers are in `conditional`, with why they are safe
//! between processes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncSeekExt, AsyncWrite};

use super::{Backend, Leftovers, ObjectMeta, Range, Versioned, check_key};
use crate::base::errors::UsageError;
use crate::base::stream::{BoxReader, BoxSink, FileSink, Sink};

mod conditional;
mod walk;

use walk::Walker;

const TMP_PREFIX: &str = ".rewind-tmp-";
const PAGE: usize = 1000;

pub struct LocalBackend {
    root: Arc<PathBuf>,
}

impl LocalBackend {
    pub fn open(url: &str) -> anyhow::Result<LocalBackend> {
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.is_empty() {
            bail!(UsageError(format!("store URL '{url}' names no directory")));
        }
        let path = expand_home(path);
        let root = std::path::absolute(&path)
            .with_context(|| format!("resolving store directory {}", path.display()))?;
        if root.exists() && !root.is_dir() {
            bail!(UsageError(format!(
                "store {} exists and is not a directory",
                root.display()
            )));
        }
        Ok(LocalBackend {
            root: Arc::new(root),
        })
    }

    fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Ok(home) = std::env::var("HOME")
    {
        return Path::new(&home).join(rest);
    }
    PathBuf::from(p)
}

fn etag_of(md: &std::fs::Metadata) -> String {
    let ns = md
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", md.len(), ns)
}

pub(super) fn meta_of(key: String, md: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: md.len(),
        mtime: md
            .modified()
            .ok()
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64()),
        etag: Some(etag_of(md)),
    }
}

/// A file sink that reports `{key, bytes, etag}`.
struct LocalSink {
    inner: Box<FileSink>,
    key: String,
    dest: PathBuf,
}

impl AsyncWrite for LocalSink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut *self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

impl Sink for LocalSink {
    fn write_piece(&mut self, piece: Vec<u8>) -> BoxFuture<'_, std::io::Result<()>> {
        self.inner.write_piece(piece)
    }
    fn finish(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>> {
        Box::pin(async move {
            let LocalSink { inner, key, dest } = *self;
            let info = inner.finish().await?;
            let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            crate::base::blocking::spawn_blocking(move || conditional::sync_dir(&dir)).await??;
            let md = tokio::fs::metadata(&dest).await?;
            let mut o = Map::new();
            o.insert("key".into(), Json::String(key));
            o.insert(
                "bytes".into(),
                info.get("bytes").cloned().unwrap_or(Json::from(md.len())),
            );
            o.insert("etag".into(), Json::String(etag_of(&md)));
            Ok(o)
        })
    }
    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        self.inner.abort()
    }
}

fn not_found(root: &Path, key: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no object '{key}' in store file://{} (not found)",
        root.display()
    )
}

impl Backend for LocalBackend {
    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn writer(&self, key: &str) -> BoxFuture<'static, anyhow::Result<BoxSink>> {
        let dest = self.path(key);
        let key = key.to_string();
        Box::pin(async move {
            let dest = dest?;
            let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            crate::base::blocking::spawn_blocking(move || conditional::create_dirs(&dir)).await??;
            let inner = FileSink::create(&dest).await?;
            Ok(Box::new(LocalSink {
                inner: Box::new(inner),
                key,
                dest,
            }) as BoxSink)
        })
    }

    fn reader(&self, key: &str, range: Range) -> BoxFuture<'static, anyhow::Result<BoxReader>> {
        let path = self.path(key);
        let root = self.root.clone();
        let key = key.to_string();
        Box::pin(async move {
            let path = path?;
            let mut f = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(not_found(&root, &key));
                }
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("opening {}", path.display()))
                    );
                }
            };
            if range.offset > 0 {
                f.seek(std::io::SeekFrom::Start(range.offset)).await?;
            }
            let r = tokio::io::BufReader::with_capacity(256 * 1024, f);
            Ok(super::limit_reader(r, range.length))
        })
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, anyhow::Result<Vec<ObjectMeta>>> {
        let walker = Walker::new(self.root.as_ref().clone(), prefix.to_string());
        Box::pin(futures::stream::unfold(Some(walker), |state| async move {
            let mut w = state?;
            let res = crate::base::blocking::spawn_blocking(move || {
                let page = w.next_page(PAGE);
                (w, page)
            })
            .await;
            match res {
                Err(e) => Some((Err(anyhow::Error::new(e)), None)),
                Ok((_, Err(e))) => Some((Err(e), None)),
                Ok((w, Ok(page))) => {
                    if page.is_empty() {
                        None
                    } else {
                        Some((Ok(page), Some(w)))
                    }
                }
            }
        }))
    }

    fn head(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<ObjectMeta>>> {
        let path = self.path(key);
        let key = key.to_string();
        Box::pin(async move {
            let path = path?;
            match tokio::fs::metadata(&path).await {
                Ok(md) if md.is_file() => Ok(Some(meta_of(key, &md))),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
                Err(e) => Err(anyhow::Error::new(e).context(format!("stat {}", path.display()))),
            }
        })
    }

    fn delete(&self, keys: Vec<String>) -> BoxFuture<'static, anyhow::Result<usize>> {
        let paths: anyhow::Result<Vec<PathBuf>> = keys.iter().map(|k| self.path(k)).collect();
        Box::pin(async move {
            let paths = paths?;
            crate::base::blocking::spawn_blocking(move || -> anyhow::Result<usize> {
                let mut n = 0;
                for p in paths {
                    match std::fs::remove_file(&p) {
                        Ok(()) => n += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(
                                anyhow::Error::new(e).context(format!("deleting {}", p.display()))
                            );
                        }
                    }
                }
                Ok(n)
            })
            .await?
        })
    }

    fn copy(&self, from: &str, to: &str) -> BoxFuture<'static, anyhow::Result<()>> {
        let src = self.path(from);
        let dst = self.path(to);
        let root = self.root.clone();
        let from = from.to_string();
        Box::pin(async move {
            let (src, dst) = (src?, dst?);
            crate::base::blocking::spawn_blocking(move || -> anyhow::Result<()> {
                let mut input = match std::fs::File::open(&src) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(not_found(&root, &from));
                    }
                    Err(e) => return Err(e.into()),
                };
                let mut tmp = temp_beside(&dst)?;
                std::io::copy(&mut input, &mut tmp).with_context(|| format!("copying {from}"))?;
                tmp.as_file().sync_all()?;
                tmp.persist(&dst).map_err(|e| e.error)?;
                conditional::sync_dir(dst.parent().unwrap_or(Path::new(".")))
            })
            .await?
        })
    }

    fn get_versioned(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<Versioned>>> {
        let path = self.path(key);
        Box::pin(async move {
            let path = path?;
            crate::base::blocking::spawn_blocking(move || conditional::get(&path)).await?
        })
    }

    fn create_if_absent(
        &self,
        key: &str,
        data: bytes::Bytes,
    ) -> BoxFuture<'static, anyhow::Result<Option<String>>> {
        let dst = self.path(key);
        Box::pin(async move {
            let dst = dst?;
            crate::base::blocking::spawn_blocking(move || conditional::create(&dst, &data)).await?
        })
    }

    fn replace_if(
        &self,
        key: &str,
        data: bytes::Bytes,
        version: &str,
    ) -> BoxFuture<'static, anyhow::Result<Option<String>>> {
        let dst = self.path(key);
        let version = version.to_string();
        Box::pin(async move {
            let dst = dst?;
            crate::base::blocking::spawn_blocking(move || {
                conditional::replace(&dst, &data, &version)
            })
            .await?
        })
    }

    fn delete_if(&self, key: &str, version: &str) -> BoxFuture<'static, anyhow::Result<bool>> {
        let dst = self.path(key);
        let version = version.to_string();
        Box::pin(async move {
            let dst = dst?;
            crate::base::blocking::spawn_blocking(move || conditional::delete(&dst, &version))
                .await?
        })
    }

    fn leftovers(
        &self,
        prefix: &str,
        older_than: std::time::Duration,
        remove: bool,
    ) -> BoxFuture<'static, anyhow::Result<Leftovers>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        Box::pin(async move {
            crate::base::blocking::spawn_blocking(move || {
                conditional::leftovers(&root, &prefix, older_than, remove)
            })
            .await?
        })
    }
}

fn temp_beside(dst: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = dst.parent().unwrap_or(Path::new("."));
    conditional::create_dirs(dir)?;
    tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}
