//! The local backend: a directory tree (`file:///path` or a plain path). Writes are atomic (a temp file
//! in the destination directory, renamed on commit); `create_if_absent` hard-links a complete temp file
//! into place, which fails when the key exists. Listing walks directories lazily in key order.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncSeekExt, AsyncWrite};

use super::{Backend, ObjectMeta, Range, check_key};
use crate::base::errors::UsageError;
use crate::base::stream::{BoxReader, BoxSink, FileSink, Sink};

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

fn meta_of(key: String, md: &std::fs::Metadata) -> ObjectMeta {
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
    fn finish(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>> {
        Box::pin(async move {
            let LocalSink { inner, key, dest } = *self;
            let info = inner.finish().await?;
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
                Ok(())
            })
            .await?
        })
    }

    fn create_if_absent(
        &self,
        key: &str,
        data: bytes::Bytes,
    ) -> BoxFuture<'static, anyhow::Result<bool>> {
        let dst = self.path(key);
        Box::pin(async move {
            let dst = dst?;
            crate::base::blocking::spawn_blocking(move || -> anyhow::Result<bool> {
                let mut tmp = temp_beside(&dst)?;
                tmp.write_all(&data)?;
                tmp.as_file().sync_all()?;
                // link(2) fails with EEXIST when the key exists: the complete content appears atomically.
                match std::fs::hard_link(tmp.path(), &dst) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => {
                        Err(anyhow::Error::new(e).context(format!("creating {}", dst.display())))
                    }
                }
            })
            .await?
        })
    }
}

fn temp_beside(dst: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = dst.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating directory {}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// A lazy depth-first walk in key order. Within a directory, entries are sorted by the key they
/// produce (a directory `a` sorts as `a/`), so the output is in byte order of keys.
struct Walker {
    root: PathBuf,
    prefix: String,
    /// Directories being walked: (relative key of the directory with trailing '/', remaining entries).
    stack: Vec<std::vec::IntoIter<(String, bool)>>,
    started: bool,
}

impl Walker {
    fn new(root: PathBuf, prefix: String) -> Walker {
        Walker {
            root,
            prefix,
            stack: Vec::new(),
            started: false,
        }
    }

    /// Reads and sorts one directory; entries are (key, is_dir) with directory keys ending in '/'.
    fn read_dir(&self, rel: &str) -> anyhow::Result<Vec<(String, bool)>> {
        let dir = if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel.trim_end_matches('/'))
        };
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("listing {}", dir.display())));
            }
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                continue;
            }
            let ft = e.file_type()?;
            let is_dir = ft.is_dir() || (ft.is_symlink() && e.path().is_dir());
            let key = if is_dir {
                format!("{rel}{name}/")
            } else {
                format!("{rel}{name}")
            };
            // Only what can match the prefix: the key starts with it, or it is an ancestor of it.
            if key.starts_with(&self.prefix) || (is_dir && self.prefix.starts_with(&key)) {
                out.push((key, is_dir));
            }
        }
        out.sort();
        Ok(out)
    }

    fn next_page(&mut self, n: usize) -> anyhow::Result<Vec<ObjectMeta>> {
        if !self.started {
            self.started = true;
            let top = self.read_dir("")?;
            self.stack.push(top.into_iter());
        }
        let mut page = Vec::new();
        while page.len() < n {
            let Some(top) = self.stack.last_mut() else {
                break;
            };
            let Some((key, is_dir)) = top.next() else {
                self.stack.pop();
                continue;
            };
            if is_dir {
                let entries = self.read_dir(&key)?;
                self.stack.push(entries.into_iter());
            } else {
                let path = self.root.join(&key);
                match std::fs::metadata(&path) {
                    Ok(md) if md.is_file() => page.push(meta_of(key, &md)),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(
                            anyhow::Error::new(e).context(format!("stat {}", path.display()))
                        );
                    }
                }
            }
        }
        Ok(page)
    }
}
