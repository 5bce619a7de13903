//! Writing a tar stream's entries beneath a directory, never through a symlink.
//!
//! Every write goes through a directory descriptor opened beneath the destination without following a
//! symlink (`beneath.rs`), and the entry itself is created with `O_EXCL | O_NOFOLLOW`, `mkdirat`,
//! `symlinkat` or `linkat` relative to it, so no path an archive names can lead a write elsewhere.
//! Refused (with the entry's name): absolute paths and `..`; an entry under a symlink ("written through
//! the symlink"); an entry whose name is already taken (an archive entry never replaces another, so a
//! symlink cannot be swapped for a file that is then written through); device files, fifos and sparse
//! files; a hard link whose target is not a regular file reached the same way. Symlinks themselves are
//! restored as they are, absolute or leading out, like tar and restic do; those that lead outside
//! (decided lexically, through the tree's own links, whether they dangle or not) are counted and named,
//! or refused with `Symlinks::Inside`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, anyhow};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::beneath::{DirError, Root, kind_at, leads_outside};
use super::create::CHUNK;
use super::extract::{
    ExtractStats, Refused, Symlinks, TarReader, check_end, kind_name, read_error,
};
use crate::prims::progress::Counter;

/// How many outward symlinks the stats name (all are counted).
const NAMED_OUTSIDE: usize = 20;

/// A relative path made of normal components only, or why not.
fn clean_rel(p: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir => {}
            Component::ParentDir => return Err("its path contains '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("its path is absolute"),
        }
    }
    Ok(out)
}

fn refuse(name: &Path, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!(Refused(format!(
        "refusing archive entry '{}': {why}; nothing is written outside the destination",
        name.display()
    )))
}

/// The directory of an entry, or the refusal that says why it cannot be written there.
fn dir_refusal(name: &Path, e: DirError) -> anyhow::Error {
    match e {
        DirError::Symlink(p) => refuse(
            name,
            format!("it would be written through the symlink '{}'", p.display()),
        ),
        DirError::NotDir(p) => refuse(name, format!("'{}' is not a directory", p.display())),
        DirError::Missing(p) => refuse(name, format!("'{}' does not exist", p.display())),
        DirError::Io(p, e) => anyhow::Error::new(e).context(format!(
            "opening '{}' in the destination for '{}'",
            p.display(),
            name.display()
        )),
    }
}

fn taken(name: &Path, what: Option<FileType>) -> anyhow::Error {
    let as_what = match what {
        Some(FileType::Symlink) => " (as a symlink)",
        Some(FileType::Directory) => " (as a directory)",
        Some(FileType::RegularFile) => " (as a file)",
        _ => "",
    };
    refuse(
        name,
        format!(
            "it is already in the destination{as_what} (an archive entry never replaces another)"
        ),
    )
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime as _,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

pub fn unpack_all(
    a: &mut TarReader,
    to: &Path,
    eof: &AtomicBool,
    symlinks: Symlinks,
    progress: &Counter,
) -> anyhow::Result<ExtractStats> {
    let mut root = Root::open(to).with_context(|| format!("opening {}", to.display()))?;
    let mut stats = ExtractStats::default();
    // Directory modes and mtimes are applied at the end (files written later would change them).
    let mut dirs: HashMap<PathBuf, (u32, u64)> = HashMap::new();
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    for entry in a.entries().context("reading the archive")? {
        let mut entry = entry.map_err(|e| read_error(e, eof))?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let raw_name = entry
            .path()
            .context("reading an entry's path")?
            .into_owned();
        let rel = clean_rel(&raw_name).map_err(|why| refuse(&raw_name, why))?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let mtime = entry.header().mtime().unwrap_or(0);
        match kind {
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(refuse(&raw_name, format!("it is a {}", kind_name(kind))));
            }
            tar::EntryType::GNUSparse => {
                return Err(refuse(&raw_name, "sparse files are not supported"));
            }
            _ => {}
        }
        let Some(name) = rel.file_name().map(OsStr::to_os_string) else {
            if kind == tar::EntryType::Directory {
                // "./": the destination's own mode and mtime, applied at the end.
                dirs.insert(PathBuf::new(), (mode, mtime));
                continue;
            }
            return Err(refuse(&raw_name, "its path is empty"));
        };
        let parent = root
            .dir(rel.parent().unwrap_or(Path::new("")), true)
            .map_err(|e| dir_refusal(&raw_name, e))?;
        let pfd = parent.as_fd();
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(pfd, &name, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => match kind_at(pfd, &name)? {
                        Some(FileType::Directory) => {}
                        other => return Err(taken(&raw_name, other)),
                    },
                    Err(e) => {
                        return Err(anyhow::Error::new(std::io::Error::from(e))
                            .context(format!("creating {}", raw_name.display())));
                    }
                }
                dirs.insert(rel, (mode, mtime));
                stats.dirs += 1;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .filter(|t| !t.as_os_str().is_empty())
                    .ok_or_else(|| refuse(&raw_name, "a symlink without a target"))?
                    .into_owned();
                match rustix::fs::symlinkat(target.as_os_str(), pfd, &name) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => return Err(taken(&raw_name, kind_at(pfd, &name)?)),
                    Err(e) => {
                        return Err(anyhow::Error::new(std::io::Error::from(e))
                            .context(format!("creating symlink {}", raw_name.display())));
                    }
                }
                let _ = rustix::fs::utimensat(pfd, &name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
                links.push((rel, target));
                stats.symlinks += 1;
            }
            tar::EntryType::Link => {
                link(&mut root, &entry, &raw_name, pfd, &name)?;
                stats.hardlinks += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let fd = match rustix::fs::openat(pfd, &name, flags, Mode::from_raw_mode(0o600)) {
                    Ok(fd) => fd,
                    Err(Errno::EXIST) => return Err(taken(&raw_name, kind_at(pfd, &name)?)),
                    Err(e) => {
                        return Err(anyhow::Error::new(std::io::Error::from(e))
                            .context(format!("creating {}", raw_name.display())));
                    }
                };
                let mut f = std::fs::File::from(fd);
                let declared = entry.size();
                let mut written = 0u64;
                loop {
                    let n = entry
                        .read(&mut buf)
                        .map_err(|e| read_error(e, eof))
                        .with_context(|| {
                            format!("reading {} from the archive", raw_name.display())
                        })?;
                    if n == 0 {
                        break;
                    }
                    std::io::Write::write_all(&mut f, &buf[..n])
                        .with_context(|| format!("writing {}", raw_name.display()))?;
                    written += n as u64;
                    progress.add_bytes(n as u64);
                }
                if written < declared {
                    anyhow::bail!(
                        "archive entry '{}' declares {declared} bytes but the archive ends after {written}: it is truncated",
                        raw_name.display()
                    );
                }
                stats.bytes += written;
                rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
                rustix::fs::futimens(&f, &times(mtime))?;
                stats.files += 1;
                progress.add_file();
            }
            other => {
                return Err(refuse(
                    &raw_name,
                    format!("unsupported entry type {other:?}"),
                ));
            }
        }
    }
    check_end(eof)?;
    for (rel, target) in &links {
        if leads_outside(&mut root, rel, target) {
            if symlinks == Symlinks::Inside {
                return Err(refuse(
                    rel,
                    format!(
                        "it is a symlink to '{}', which leads outside the destination (symlinks=inside)",
                        target.display()
                    ),
                ));
            }
            stats.symlinks_outside += 1;
            if stats.outside.len() < NAMED_OUTSIDE {
                stats
                    .outside
                    .push((rel.display().to_string(), target.display().to_string()));
            }
        }
    }
    set_dir_modes(&mut root, dirs)?;
    Ok(stats)
}

/// A hard link to a regular file already extracted, reached the same way as any entry.
fn link<R: Read>(
    root: &mut Root,
    entry: &tar::Entry<'_, R>,
    raw_name: &Path,
    pfd: BorrowedFd<'_>,
    name: &OsStr,
) -> anyhow::Result<()> {
    let target = entry
        .link_name()?
        .ok_or_else(|| refuse(raw_name, "a hard link without a target"))?
        .into_owned();
    let trel = clean_rel(&target).map_err(|why| {
        refuse(
            raw_name,
            format!("hard link target '{}': {why}", target.display()),
        )
    })?;
    let not_inside = || {
        refuse(
            raw_name,
            format!(
                "hard link to '{}', which is not a file extracted inside the destination",
                target.display()
            ),
        )
    };
    let tname = trel.file_name().ok_or_else(not_inside)?.to_os_string();
    let src = match root.dir(trel.parent().unwrap_or(Path::new("")), false) {
        Ok(fd) => fd,
        Err(DirError::Symlink(p)) => {
            return Err(refuse(
                raw_name,
                format!(
                    "hard link target '{}' goes through the symlink '{}'",
                    target.display(),
                    p.display()
                ),
            ));
        }
        Err(DirError::Io(_, e)) => return Err(e.into()),
        Err(_) => return Err(not_inside()),
    };
    if kind_at(src.as_fd(), &tname)? != Some(FileType::RegularFile) {
        return Err(not_inside());
    }
    match rustix::fs::linkat(src.as_fd(), &tname, pfd, name, AtFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(taken(raw_name, kind_at(pfd, name)?)),
        Err(e) => Err(anyhow::Error::new(std::io::Error::from(e))
            .context(format!("linking {}", raw_name.display()))),
    }
}

/// Applies directory modes and mtimes, deepest first (a parent made read-only last).
fn set_dir_modes(root: &mut Root, dirs: HashMap<PathBuf, (u32, u64)>) -> anyhow::Result<()> {
    let mut dirs: Vec<_> = dirs.into_iter().collect();
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (rel, (mode, mtime)) in dirs {
        let (parent, name) = match rel.file_name() {
            Some(n) => (rel.parent().unwrap_or(Path::new("")), n.to_os_string()),
            None => (Path::new(""), ".".into()),
        };
        let pfd = root.dir(parent, false).map_err(|e| dir_refusal(&rel, e))?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(pfd.as_fd(), &name, flags, Mode::empty())
            .map_err(std::io::Error::from)
            .with_context(|| format!("opening directory '{}'", rel.display()))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(std::io::Error::from)
            .with_context(|| format!("setting the mode of '{}'", rel.display()))?;
        let _ = rustix::fs::futimens(&fd, &times(mtime));
    }
    Ok(())
}
