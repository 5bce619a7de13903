//! Directories beneath a root, opened without ever following a symlink.
//!
//! Extraction writes only through directory descriptors obtained here: `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` where the kernel has it (Linux 5.6+),
//! else (and to create what is missing, or to name the component that blocks) a walk that opens one
//! component at a time with `O_DIRECTORY | O_NOFOLLOW`. Paths here are relative and made of normal
//! components only (the caller refuses `..` and absolute paths first), so nothing is resolved: a
//! symlink anywhere on the way is an error, never a detour.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Set once `openat2` turned out to be missing (old kernel) or filtered (seccomp): walk from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Why a directory beneath the root could not be opened. Paths are relative to the root.
#[derive(Debug)]
pub enum DirError {
    /// This component is a symlink.
    Symlink(PathBuf),
    /// This component exists and is not a directory.
    NotDir(PathBuf),
    /// This component does not exist (only when not creating).
    Missing(PathBuf),
    Io(PathBuf, std::io::Error),
}

/// The root directory of an extraction, and the last directory opened beneath it (entries of one
/// directory usually follow each other in an archive).
pub struct Root {
    fd: OwnedFd,
    last: Option<(PathBuf, Rc<OwnedFd>)>,
}

fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// What is at `name` in `dir`, not following a symlink; `None` when nothing is.
pub fn kind_at(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Root {
    /// Opens the root itself (the caller's own path, which may go through symlinks).
    pub fn open(path: &Path) -> std::io::Result<Root> {
        let fd = rustix::fs::open(path, dir_flags(), Mode::empty())?;
        Ok(Root { fd, last: None })
    }

    /// The directory `rel` beneath the root (the root itself for an empty path); missing components are
    /// created (mode 0755 less the umask) when `create` is set.
    pub fn dir(&mut self, rel: &Path, create: bool) -> Result<Rc<OwnedFd>, DirError> {
        if let Some((p, fd)) = &self.last
            && p == rel
        {
            return Ok(fd.clone());
        }
        let fd = Rc::new(self.open_dir(rel, create)?);
        self.last = Some((rel.to_path_buf(), fd.clone()));
        Ok(fd)
    }

    fn open_dir(&self, rel: &Path, create: bool) -> Result<OwnedFd, DirError> {
        #[cfg(test)]
        if tests::WALK_ONLY.with(|w| w.get()) {
            return self.walk(rel, create);
        }
        let target: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let how =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.fd, target, dir_flags(), Mode::empty(), how) {
                Ok(fd) => return Ok(fd),
                Err(Errno::NOSYS | Errno::PERM | Errno::INVAL) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                }
                // Missing (to create), a symlink or a file on the way (to name), or a rename race.
                Err(_) => {}
            }
        }
        self.walk(rel, create)
    }

    /// One component at a time, never following a symlink.
    fn walk(&self, rel: &Path, create: bool) -> Result<OwnedFd, DirError> {
        let mut cur: Option<OwnedFd> = None;
        let mut done = PathBuf::new();
        for c in rel.components() {
            let name = match c {
                Component::Normal(n) => n,
                Component::CurDir => continue,
                _ => {
                    let e = std::io::Error::other("not a plain relative path");
                    return Err(DirError::Io(rel.to_path_buf(), e));
                }
            };
            done.push(name);
            let base = cur.as_ref().map(|f| f.as_fd()).unwrap_or(self.fd.as_fd());
            let flags = dir_flags() | OFlags::NOFOLLOW;
            let next = match rustix::fs::openat(base, name, flags, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(base, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(DirError::Io(done, e.into())),
                    }
                    rustix::fs::openat(base, name, flags, Mode::empty())
                }
                r => r,
            };
            match next {
                Ok(fd) => cur = Some(fd),
                Err(e) => return Err(classify(base, name, done, e)),
            }
        }
        match cur {
            Some(fd) => Ok(fd),
            None => rustix::fs::openat(&self.fd, ".", dir_flags(), Mode::empty())
                .map_err(|e| DirError::Io(PathBuf::new(), e.into())),
        }
    }
}

fn classify(base: BorrowedFd<'_>, name: &OsStr, at: PathBuf, e: Errno) -> DirError {
    match e {
        Errno::NOENT => DirError::Missing(at),
        Errno::LOOP | Errno::NOTDIR => match kind_at(base, name) {
            Ok(Some(FileType::Symlink)) => DirError::Symlink(at),
            Ok(Some(FileType::Directory)) | Ok(None) => DirError::Io(at, e.into()),
            Ok(Some(_)) => DirError::NotDir(at),
            Err(err) => DirError::Io(at, err),
        },
        e => DirError::Io(at, e.into()),
    }
}

/// Where a symlink leads, decided lexically inside the extracted tree: each component of its target is
/// taken in turn from the link's own directory; `..` goes up (leaving the root is "outside"), and a
/// component that is itself a symlink in the tree is replaced by its target (at most 40 of them, as the
/// kernel allows). Components that do not exist are taken as plain names, so a chain that dangles now
/// is judged by where it would lead once completed.
pub fn leads_outside(root: &mut Root, link: &Path, target: &Path) -> bool {
    let mut at: Vec<std::ffi::OsString> = link
        .parent()
        .unwrap_or(Path::new(""))
        .components()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut pending: std::collections::VecDeque<std::ffi::OsString> = Default::default();
    if !push_target(&mut pending, target) {
        return true;
    }
    let mut expansions = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            if at.pop().is_none() {
                return true;
            }
            continue;
        }
        at.push(c);
        let here: PathBuf = at.iter().collect();
        let Some(next) = read_link(root, &here) else {
            continue;
        };
        expansions += 1;
        if expansions > 40 {
            // A loop: it leads nowhere at all.
            return false;
        }
        at.pop();
        let mut front = Default::default();
        if !push_target(&mut front, &next) {
            return true;
        }
        front.extend(pending.drain(..));
        pending = front;
    }
    false
}

/// Queues a target's components; false for an absolute target.
fn push_target(q: &mut std::collections::VecDeque<std::ffi::OsString>, target: &Path) -> bool {
    for c in target.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return false,
            Component::CurDir => {}
            Component::ParentDir => q.push_back("..".into()),
            Component::Normal(n) => q.push_back(n.to_os_string()),
        }
    }
    true
}

/// The target of the symlink at `rel` in the tree, if that is a symlink (reached without following).
fn read_link(root: &mut Root, rel: &Path) -> Option<PathBuf> {
    let name = rel.file_name()?;
    let parent = root
        .dir(rel.parent().unwrap_or(Path::new("")), false)
        .ok()?;
    let t = rustix::fs::readlinkat(parent.as_fd(), name, Vec::new()).ok()?;
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(std::ffi::OsString::from_vec(t.into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    thread_local! {
        /// Forces the O_NOFOLLOW walk, as on a kernel without openat2.
        pub static WALK_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("to/a/b")).unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        symlink("../outside", t.path().join("to/esc")).unwrap();
        symlink("b", t.path().join("to/a/inner")).unwrap();
        std::fs::write(t.path().join("to/file"), "x").unwrap();
        t
    }

    fn both(f: impl Fn()) {
        for walk in [false, true] {
            WALK_ONLY.with(|w| w.set(walk));
            f();
        }
        WALK_ONLY.with(|w| w.set(false));
    }

    #[test]
    fn directories_open_beneath_the_root_and_never_through_a_symlink() {
        both(|| {
            let t = tree();
            let mut root = Root::open(&t.path().join("to")).unwrap();
            assert!(root.dir(Path::new("a/b"), false).is_ok());
            assert!(
                matches!(root.dir(Path::new("esc"), true), Err(DirError::Symlink(p)) if p == Path::new("esc"))
            );
            assert!(
                matches!(root.dir(Path::new("esc/x/y"), true), Err(DirError::Symlink(p)) if p == Path::new("esc"))
            );
            assert!(
                matches!(root.dir(Path::new("a/inner/c"), true), Err(DirError::Symlink(p)) if p == Path::new("a/inner"))
            );
            assert!(
                matches!(root.dir(Path::new("file/x"), true), Err(DirError::NotDir(p)) if p == Path::new("file"))
            );
            assert!(matches!(
                root.dir(Path::new("new/x"), false),
                Err(DirError::Missing(_))
            ));
            assert!(root.dir(Path::new("new/x"), true).is_ok());
            assert!(t.path().join("to/new/x").is_dir());
            assert!(
                !t.path().join("outside/x").exists(),
                "nothing made through the symlink"
            );
        });
    }

    #[test]
    fn outward_links_are_found_lexically_through_chains_that_dangle() {
        let t = tempfile::tempdir().unwrap();
        let to = t.path().join("to");
        std::fs::create_dir_all(to.join("a")).unwrap();
        symlink("..", to.join("a/b")).unwrap();
        let mut root = Root::open(&to).unwrap();
        let out = |root: &mut Root, link: &str, target: &str| {
            leads_outside(root, Path::new(link), Path::new(target))
        };
        assert!(!out(&mut root, "a/b", ".."));
        assert!(
            out(&mut root, "c", "a/b/../x"),
            "a/b is the root, so a/b/.. is outside"
        );
        assert!(!out(&mut root, "c", "a/b/x"), "a/b/x is x at the root");
        assert!(
            !out(&mut root, "c", "a/missing/../x"),
            "dangling, and still inside"
        );
        assert!(out(&mut root, "c", "a/missing/../../../x"));
        assert!(out(&mut root, "c", "/etc/hostname"));
        assert!(out(&mut root, "a/c", "../../x"));
        assert!(!out(&mut root, "a/c", "../x"));
        symlink("/etc", to.join("abs")).unwrap();
        assert!(
            out(&mut root, "c", "abs/hostname"),
            "through an absolute link"
        );
        symlink("loop2", to.join("loop1")).unwrap();
        symlink("loop1", to.join("loop2")).unwrap();
        assert!(!out(&mut root, "c", "loop1/x"), "a loop leads nowhere");
    }
}
