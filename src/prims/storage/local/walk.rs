//! Listing the local store: a lazy depth-first walk of the directory tree in key order, skipping the
//! temporary files of writers (`.rewind-tmp-*`).

use std::path::PathBuf;

use anyhow::Context;

use super::{TMP_PREFIX, meta_of};
use crate::prims::storage::ObjectMeta;

/// A lazy depth-first walk in key order. Within a directory, entries are sorted by the key they
/// produce (a directory `a` sorts as `a/`), so the output is in byte order of keys.
pub(super) struct Walker {
    root: PathBuf,
    prefix: String,
    /// Directories being walked: (relative key of the directory with trailing '/', remaining entries).
    stack: Vec<std::vec::IntoIter<(String, bool)>>,
    started: bool,
}

impl Walker {
    pub(super) fn new(root: PathBuf, prefix: String) -> Walker {
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

    pub(super) fn next_page(&mut self, n: usize) -> anyhow::Result<Vec<ObjectMeta>> {
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
