//! Helpers for the archive tests: run a Lua snippet through the real binary, build trees, compare trees.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

pub use super::process::rewind;
use super::process::{text, unique};

/// Runs `body` (the inside of `run = function(p) ... end`) with string params `p.*`.
pub fn run_lua(dir: &Path, body: &str, params: &[(&str, &str)]) -> Output {
    let mut decl = String::new();
    for (k, _) in params {
        decl.push_str(&format!("{k} = {{ type = \"string\", doc = \"{k}\" }}, "));
    }
    let script = format!(
        "return {{ description = \"test\", params = {{ {decl} }}, run = function(p)\n{body}\nend }}\n"
    );
    let path = dir.join(format!("t{}.lua", unique()));
    std::fs::write(&path, script).unwrap();
    let mut c = rewind();
    c.arg("run").arg("--json").arg(&path);
    for (k, v) in params {
        c.arg(format!("{k}={v}"));
    }
    c.output().unwrap()
}

pub fn ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "rewind failed: {}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn set_mtime(p: &Path, secs: i64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    let f = std::fs::File::open(p).unwrap();
    f.set_times(std::fs::FileTimes::new().set_modified(t))
        .unwrap();
}

/// A small tree with nested dirs, odd modes, old mtimes, a symlink, an empty dir and a binary file.
pub fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("top.txt"), "hello\n").unwrap();
    std::fs::write(root.join("a/one.log"), "log line\n".repeat(1000)).unwrap();
    let bin: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("a/b/bin.dat"), &bin).unwrap();
    std::fs::write(root.join("a/b/c/exec.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        root.join("a/b/c/exec.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::write(root.join("a/secret"), "x").unwrap();
    std::fs::set_permissions(
        root.join("a/secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(root.join(format!("long_{}", "n".repeat(150))), "long name").unwrap();
    std::os::unix::fs::symlink("a/b/bin.dat", root.join("link")).unwrap();
    std::os::unix::fs::symlink("../top.txt", root.join("a/up")).unwrap();
    for (i, p) in [
        "top.txt",
        "a/one.log",
        "a/b/bin.dat",
        "a/b/c/exec.sh",
        "a/secret",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(p), 1_600_000_000 + i as i64 * 1000);
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o751)).unwrap();
    for (i, p) in ["a/b/c", "a/b", "a", "empty", ""].iter().enumerate() {
        set_mtime(&root.join(p), 1_500_000_000 + i as i64);
    }
}

#[derive(Debug, PartialEq)]
pub enum Node {
    File {
        mode: u32,
        mtime: i64,
        data: Vec<u8>,
    },
    Dir {
        mode: u32,
        mtime: i64,
    },
    Link {
        target: PathBuf,
    },
}

/// Everything a user would compare: bytes, modes, mtimes (seconds), symlink targets.
pub fn snapshot_tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut m = BTreeMap::new();
    for e in walkdir::WalkDir::new(root) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
        let md = e.path().symlink_metadata().unwrap();
        let node = if md.file_type().is_symlink() {
            Node::Link {
                target: std::fs::read_link(e.path()).unwrap(),
            }
        } else if md.is_dir() {
            Node::Dir {
                mode: md.mode() & 0o7777,
                mtime: md.mtime(),
            }
        } else {
            Node::File {
                mode: md.mode() & 0o7777,
                mtime: md.mtime(),
                data: std::fs::read(e.path()).unwrap(),
            }
        };
        m.insert(rel, node);
    }
    m
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// The tree without its root entry (restoring into an existing directory keeps that directory's own
/// mode and mtime).
pub fn snapshot_contents(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut m = snapshot_tree(root);
    m.remove(Path::new(""));
    m
}

/// Every path under `dir` (to check that nothing was written there).
pub fn listing(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect()
}

/// `rewind run --json ARGS` in `cwd` with `REWIND_STORE=store`.
pub fn run_in(store: &Path, cwd: &Path, args: &[&str]) -> Output {
    rewind()
        .current_dir(cwd)
        .env("REWIND_STORE", store)
        .arg("run")
        .arg("--json")
        .args(args)
        .output()
        .unwrap()
}

/// Every entry under `dir` as a user would compare it (type, mode, sha256 of the bytes, link target),
/// by path relative to `dir`; empty when `dir` does not exist.
pub fn hashed(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut m = BTreeMap::new();
    if std::fs::symlink_metadata(dir).is_err() {
        return m;
    }
    for e in walkdir::WalkDir::new(dir).min_depth(1) {
        let e = e.unwrap();
        let md = e.path().symlink_metadata().unwrap();
        let what = if md.file_type().is_symlink() {
            format!(
                "link -> {}",
                std::fs::read_link(e.path()).unwrap().display()
            )
        } else if md.is_dir() {
            format!("dir {:o}", md.mode() & 0o7777)
        } else {
            let data = std::fs::read(e.path()).unwrap();
            format!("file {:o} {}", md.mode() & 0o7777, sha256_hex(&data))
        };
        m.insert(e.path().strip_prefix(dir).unwrap().to_path_buf(), what);
    }
    m
}

/// Writes a snapshot straight into a local store's layout: its objects `(name, ext, bytes)` under
/// `<prefix>/<day>/<name>_<hms>.<ext>`, then a valid manifest, which `edit` may change first (to make it
/// lie). Returns the manifest's path.
pub fn write_snapshot(
    store: &Path,
    prefix: &str,
    id: &str,
    objects: &[(&str, &str, &[u8])],
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let (day, hms) = id.split_once('-').unwrap();
    let dir = store.join(prefix).join(day);
    std::fs::create_dir_all(&dir).unwrap();
    let mut list = Vec::new();
    for (name, ext, bytes) in objects {
        let key = format!("{prefix}/{day}/{name}_{hms}.{ext}");
        std::fs::write(store.join(&key), bytes).unwrap();
        list.push(
            serde_json::json!({"name": name, "key": key, "size": bytes.len(),
            "sha256": sha256_hex(bytes), "ext": ext}),
        );
    }
    let at = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &day[0..4],
        &day[4..6],
        &day[6..8],
        &hms[0..2],
        &hms[2..4],
        &hms[4..6]
    );
    let mut m = serde_json::json!({
        "format": "rewind.snapshot/1", "id": id, "prefix": prefix, "procedure": "backup-dir",
        "target": "data", "host": "h", "started_at": at, "finished_at": at, "params": {}, "tags": {},
        "rewind_version": "0", "layout": "contents", "objects": list,
    });
    edit(&mut m);
    let path = dir.join(format!("manifest_{hms}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    path
}
