//! The quick scan that gives an archive's progress its totals from the start, as restic's does: the trees
//! are walked beside the archive, stat only, by a few threads sharing a stack of directories. It applies
//! the archive's excludes, counts regular files and their bytes, and with the parent snapshot's index also
//! the bytes of files the archive will not read (unchanged), so the ETA counts only what is left to read.
//! It stops as soon as the archive ends; memory is the stack of directories not yet read.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use globset::GlobSet;

use crate::prims::progress::Scan;

/// Whether the file of this archive name and stat will be referenced, not read (an indexed archive's
/// parent has it unchanged).
pub(super) type Unchanged = Arc<dyn Fn(&str, &Metadata) -> bool + Send + Sync>;

/// Threads that stat: the work waits on the disk (or on the kernel's cache), not on a core.
const WORKERS: usize = 4;

struct Root {
    /// Archive names are `name/rel`, or `rel` alone for a flat archive.
    name: Option<PathBuf>,
}

struct Work {
    /// (root, directory, its path relative to the root)
    stack: Vec<(usize, PathBuf, PathBuf)>,
    busy: usize,
}

struct Walk {
    roots: Vec<Root>,
    exclude: Option<GlobSet>,
    unchanged: Option<Unchanged>,
    scan: Scan,
    work: Mutex<Work>,
    cv: Condvar,
}

/// Starts scanning `paths` (named in the archive as `create::walk` names them) on threads of its own.
pub(super) fn start(
    paths: &[PathBuf],
    flat: bool,
    exclude: Option<GlobSet>,
    unchanged: Option<Unchanged>,
    scan: Scan,
) {
    let mut w = Walk {
        roots: Vec::new(),
        exclude,
        unchanged,
        scan,
        work: Mutex::new(Work {
            stack: Vec::new(),
            busy: 0,
        }),
        cv: Condvar::new(),
    };
    let mut stack = Vec::new();
    for path in paths {
        // A root that cannot be read fails the archive itself, with its own message.
        let (Ok(md), Ok(base)) = (
            std::fs::symlink_metadata(path),
            super::create::base_name(path),
        ) else {
            continue;
        };
        if md.is_dir() {
            stack.push((w.roots.len(), path.clone(), PathBuf::new()));
        } else if md.is_file() {
            let unchanged = w
                .unchanged
                .as_ref()
                .is_some_and(|u| base.to_str().is_some_and(|n| u(n, &md)));
            w.scan
                .add(1, md.len(), if unchanged { md.len() } else { 0 });
        }
        w.roots.push(Root {
            name: (!flat).then_some(base),
        });
    }
    w.work.get_mut().unwrap_or_else(|e| e.into_inner()).stack = stack;
    let walk = Arc::new(w);
    let spawned = std::thread::Builder::new()
        .name("rewind-scan".into())
        .spawn(move || {
            std::thread::scope(|sc| {
                for _ in 0..WORKERS {
                    sc.spawn(|| worker(&walk));
                }
            });
            walk.scan.done();
        });
    if spawned.is_err() {
        tracing::debug!("no thread for the progress scan: the totals stay unknown");
    }
}

fn worker(w: &Walk) {
    loop {
        let (root, dir, rel) = {
            let mut work = w.work.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if w.scan.stopped() {
                    work.stack.clear();
                    w.cv.notify_all();
                    return;
                }
                if let Some(job) = work.stack.pop() {
                    work.busy += 1;
                    break job;
                }
                if work.busy == 0 {
                    w.cv.notify_all();
                    return;
                }
                work = w.cv.wait(work).unwrap_or_else(|e| e.into_inner());
            }
        };
        let subdirs = visit(w, root, &dir, &rel);
        let mut work = w.work.lock().unwrap_or_else(|e| e.into_inner());
        work.stack.extend(subdirs);
        work.busy -= 1;
        w.cv.notify_all();
    }
}

/// Counts one directory's files; returns its subdirectories.
fn visit(w: &Walk, root: usize, dir: &Path, rel: &Path) -> Vec<(usize, PathBuf, PathBuf)> {
    let mut subdirs = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return subdirs;
    };
    let (mut files, mut bytes, mut same) = (0u64, 0u64, 0u64);
    for e in entries.flatten() {
        if w.scan.stopped() {
            break;
        }
        let rel = rel.join(e.file_name());
        if w.exclude.as_ref().is_some_and(|g| g.is_match(&rel)) {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            subdirs.push((root, e.path(), rel));
        } else if ft.is_file() {
            // lstat, as the archive's walk does (symlinks are not followed).
            let Ok(md) = e.metadata() else { continue };
            files += 1;
            bytes += md.len();
            if let Some(u) = &w.unchanged {
                let name = match &w.roots[root].name {
                    Some(base) => base.join(&rel),
                    None => rel,
                };
                if name.to_str().is_some_and(|n| u(n, &md)) {
                    same += md.len();
                }
            }
        }
    }
    w.scan.add(files, bytes, same);
    subdirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prims::progress::{Progress, Unit};

    #[test]
    fn counts_what_the_archive_would_hold() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        for d in ["a/b/c", "skip/deep", "e"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let mut expect = (0u64, 0u64);
        for (i, f) in ["top", "a/one", "a/b/two", "a/b/c/three", "e/four"]
            .iter()
            .enumerate()
        {
            std::fs::write(root.join(f), vec![b'x'; i * 1000 + 7]).unwrap();
            expect = (expect.0 + 1, expect.1 + (i * 1000 + 7) as u64);
        }
        std::fs::write(root.join("skip/deep/big"), vec![0u8; 50_000]).unwrap();
        std::fs::write(root.join("a/x.log"), "log").unwrap();
        std::os::unix::fs::symlink("top", root.join("link")).unwrap();
        let mut ex = globset::GlobSetBuilder::new();
        ex.add(globset::Glob::new("skip").unwrap());
        ex.add(globset::Glob::new("*.log").unwrap());
        // "data/a/one" (named under the root's name) is unchanged.
        let unchanged: Unchanged = Arc::new(|name, _| name == "data/a/one");
        let mut p = Progress::new("t", Unit::Files);
        start(
            std::slice::from_ref(&root),
            false,
            Some(ex.build().unwrap()),
            Some(unchanged),
            p.counter().scan(),
        );
        let t0 = std::time::Instant::now();
        while p.figures().scanning {
            assert!(t0.elapsed().as_secs() < 10, "the scan never ended");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let f = p.figures();
        assert_eq!(
            (f.files_total, f.bytes_total),
            (Some(expect.0), Some(expect.1))
        );
        // a/one's 1007 bytes will not be read: once the rest was, nothing is left.
        p.counter().add_bytes(expect.1 - 1008);
        assert!(p.figures().eta_seconds.unwrap() > 0.0);
        p.counter().add_bytes(1);
        assert_eq!(p.figures().eta_seconds, Some(0.0));
        p.finish();
    }
}
