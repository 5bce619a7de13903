//! Conditional writes on the local store, safe between processes, the directory syncs that make a
//! commit durable, and the temp files that killed writers leave behind.
//!
//! - A version is the sha256 of an object's content. Files are never changed in place (every write is a
//!   complete temp file renamed or linked into place), so a version names one immutable content.
//! - `create`: link(2) of a complete, synced temp file. link fails with EEXIST when the key exists, and
//!   does so atomically (POSIX): of two creators exactly one wins, and no reader sees a partial file.
//! - `replace` and `delete`: under an exclusive flock(2) on the key's current file. Once flock returns
//!   we check that the path still names the inode we locked (stat of the path against fstat of our fd);
//!   when another writer renamed a new file in meanwhile, we start over on that one. Holding the lock on
//!   the file that *is* the key, we compare its content's hash with the expected version and rename a
//!   complete, synced temp file over it (or unlink it). Any other conditional writer either waits for our
//!   lock and then finds the inode replaced (and starts over, comparing against our content), or locks
//!   the new file after us: compare and swap are one step for every process. flock locks belong to the
//!   open file and die with the process, so a killed writer never leaves a lock behind. (Plain `put`s
//!   do not lock; objects written conditionally, such as leases, are only ever written conditionally.)
//!   flock needs a filesystem that implements it between processes (local ones; NFS maps it to fcntl
//!   locks).
//! - After every rename, link or unlink the directory is fsynced, and so is the parent of every
//!   directory created on the way: once a call returns, a crash cannot lose what it committed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use sha2::Digest;

use super::TMP_PREFIX;
use crate::prims::storage::{Leftovers, Versioned};

pub(super) fn version_of(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// Makes the entries of `dir` durable (the names renamed, linked or unlinked in it).
pub(super) fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// create_dir_all, then fsync the parent of each directory it created (so that the new directories
/// survive a crash along with what is committed in them).
pub(super) fn create_dirs(dir: &Path) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.as_os_str().is_empty() || p.is_dir() {
            break;
        }
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating directory {}", dir.display()))?;
    for m in missing.iter().rev() {
        if let Some(parent) = m.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn absent(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::EISDIR))
}

/// A complete, synced temp file holding `data`, beside `dest`.
fn temp_with(dest: &Path, data: &[u8]) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = parent(dest);
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

pub(super) fn get(path: &Path) -> anyhow::Result<Option<Versioned>> {
    match std::fs::read(path) {
        Ok(body) => Ok(Some(Versioned {
            version: version_of(&body),
            body: body.into(),
        })),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    }
}

pub(super) fn create(dest: &Path, data: &[u8]) -> anyhow::Result<Option<String>> {
    create_dirs(parent(dest))?;
    let tmp = temp_with(dest, data)?;
    match std::fs::hard_link(tmp.path(), dest) {
        Ok(()) => {
            sync_dir(parent(dest))?;
            Ok(Some(version_of(data)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating {}", dest.display()))),
    }
    // `tmp` is removed on drop: the key keeps its own link to the content.
}

/// The key's current file, opened and exclusively flocked; `None` when there is none.
fn lock_current(path: &Path) -> anyhow::Result<Option<File>> {
    loop {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("opening {}", path.display())));
            }
        };
        loop {
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(anyhow::Error::new(e).context(format!("locking {}", path.display())));
            }
        }
        let ours = f.metadata()?;
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => return Ok(Some(f)),
            // Replaced or removed while we waited: look at what is there now.
            Ok(_) => continue,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("stat {}", path.display()))),
        }
    }
}

fn current_version(f: &mut File) -> anyhow::Result<String> {
    let mut cur = Vec::new();
    f.read_to_end(&mut cur)?;
    Ok(version_of(&cur))
}

pub(super) fn replace(dest: &Path, data: &[u8], version: &str) -> anyhow::Result<Option<String>> {
    let Some(mut locked) = lock_current(dest)? else {
        return Ok(None);
    };
    if current_version(&mut locked)? != version {
        return Ok(None);
    }
    let tmp = temp_with(dest, data)?;
    tmp.persist(dest).map_err(|e| {
        anyhow::Error::new(e.error).context(format!("renaming into {}", dest.display()))
    })?;
    sync_dir(parent(dest))?;
    drop(locked);
    Ok(Some(version_of(data)))
}

pub(super) fn delete(dest: &Path, version: &str) -> anyhow::Result<bool> {
    let Some(mut locked) = lock_current(dest)? else {
        return Ok(true);
    };
    if current_version(&mut locked)? != version {
        return Ok(false);
    }
    match std::fs::remove_file(dest) {
        Ok(()) => {}
        Err(e) if absent(&e) => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("deleting {}", dest.display()))),
    }
    sync_dir(parent(dest))?;
    drop(locked);
    Ok(true)
}

/// Temp files under `root/prefix` last modified more than `older_than` ago; removed when `remove`.
pub(super) fn leftovers(
    root: &Path,
    prefix: &str,
    older_than: Duration,
    remove: bool,
) -> anyhow::Result<Leftovers> {
    let base = root.join(prefix.trim_matches('/'));
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut out = Leftovers::default();
    if !base.is_dir() {
        return Ok(out);
    }
    for entry in walkdir::WalkDir::new(&base).follow_links(false) {
        let entry = match entry {
            Ok(e) => e,
            // Removed while we walked (a writer finishing): not a leftover.
            Err(e) if e.io_error().is_some_and(absent) => continue,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("walking {}", base.display())));
            }
        };
        if !entry.file_type().is_file()
            || !entry.file_name().to_string_lossy().starts_with(TMP_PREFIX)
        {
            continue;
        }
        let md = match entry.metadata() {
            Ok(m) => m,
            Err(_) => continue,
        };
        if md.modified().map(|m| m > cutoff).unwrap_or(true) {
            continue;
        }
        if remove {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(e) if absent(&e) => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("removing {}", entry.path().display())));
                }
            }
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        out.keys.push(rel.to_string_lossy().into_owned());
        out.bytes += md.len();
    }
    out.keys.sort();
    Ok(out)
}
