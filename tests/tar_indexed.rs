//! Indexed archives through the real binary against a local store: `tar.create{index = ...}` cuts the
//! tar.zst into frames and writes an index, a second create with `parent` stores only what changed,
//! `tar.compose` rebuilds the tree from the objects (or one path of it, reading one range), and a
//! corrupt frame fails the restore naming the file. The objects are checked with the real zstd and tar.

mod common;
use common::archive::*;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CREATE: &str = r#"
local tar = require('rewind.tar')
local s = require('rewind.store').open(p.store)
local parent = nil
if p.parent ~= '-' then parent = s:reader(p.parent) end
local r = tar.create{from = {p.from}, to = s:writer(p.obj), index = s:writer(p.idx), object = p.obj,
  flat = true, parent = parent}
r.entries, r.header = tar.index(s:reader(p.idx))
return r
"#;

const COMPOSE: &str = r#"
local tar = require('rewind.tar')
local s = require('rewind.store').open(p.store)
local path = nil
if p.path ~= '-' then path = p.path end
local r, c = tar.compose{store = s, index = s:reader(p.idx), path = path}
local x = tar.extract{from = r, to = p.to}
return {extract = x, files = c.files, dirs = c.dirs, symlinks = c.symlinks, bytes = c.bytes,
  ranges = c.ranges, stored_bytes = c.stored_bytes, done = c.done}
"#;

struct World {
    tmp: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let w = World {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(w.store()).unwrap();
        w
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn store(&self) -> PathBuf {
        self.p("store")
    }
    fn s(&self, p: &Path) -> String {
        p.to_str().unwrap().to_string()
    }
    fn create(&self, obj: &str, idx: &str, parent: &str) -> Value {
        ok(&run_lua(
            self.tmp.path(),
            CREATE,
            &[
                ("store", &self.s(&self.store())),
                ("from", &self.s(&self.p("src"))),
                ("obj", obj),
                ("idx", idx),
                ("parent", parent),
            ],
        ))
    }
    fn compose(&self, idx: &str, path: &str, to: &str) -> std::process::Output {
        run_lua(
            self.tmp.path(),
            COMPOSE,
            &[
                ("store", &self.s(&self.store())),
                ("idx", idx),
                ("path", path),
                ("to", &self.s(&self.p(to))),
            ],
        )
    }
    fn object(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.store().join(key)).unwrap()
    }
}

/// Incompressible bytes (xorshift64*), so that zstd stores them as they are.
fn pseudo(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545F4914F6CDD1D) >> 56) as u8
        })
        .collect()
}

/// make_tree's files, dirs and symlinks plus an empty file, a 10-byte one, a 3 MiB one (more than a
/// frame) and 1500 small ones in nested directories.
fn build_tree(root: &Path) {
    make_tree(root);
    std::fs::write(root.join("zero"), b"").unwrap();
    std::fs::write(root.join("ten"), b"0123456789").unwrap();
    std::fs::write(root.join("big.bin"), pseudo(3 << 20, 7)).unwrap();
    for i in 0..1500u32 {
        let dir = root.join(format!("many/d{}", i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!("file {i}\n").repeat(1 + (i as usize * 37) % 400);
        std::fs::write(dir.join(format!("f{i:04}")), text).unwrap();
    }
    std::os::unix::fs::symlink("d0/f0007", root.join("many/link7")).unwrap();
}

/// `zstd -d < object | tar -x` into `to` with the real tools.
fn real_extract(object: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let sh = format!(
        "zstd -dc < '{}' | tar -x --no-same-owner -p -f - -C '{}'",
        object.display(),
        to.display()
    );
    let st = Command::new("sh").arg("-c").arg(sh).status().unwrap();
    assert!(st.success(), "zstd -d | tar -x failed");
}

/// `zstd -d < object | tar -t`.
fn real_list(object: &Path) -> Vec<String> {
    let sh = format!("zstd -dc < '{}' | tar -t -f -", object.display());
    let out = Command::new("sh").arg("-c").arg(sh).output().unwrap();
    assert!(out.status.success(), "{}", text_of(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect()
}

fn text_of(out: &std::process::Output) -> String {
    format!("{}{}", stderr(out), String::from_utf8_lossy(&out.stdout))
}

fn files_of(entries: &Value) -> Vec<&Value> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "file")
        .collect()
}

/// Every file line's frame, decoded alone, holds the file's tar entry at tpos with the sha256 indexed.
fn check_locations(w: &World, entries: &Value) {
    for e in files_of(entries) {
        let obj = w.object(e["obj"].as_str().unwrap());
        let (foff, flen) = (e["foff"].as_u64().unwrap(), e["flen"].as_u64().unwrap());
        let frame = zstd::decode_all(&obj[foff as usize..(foff + flen) as usize]).unwrap();
        let at = (e["tpos"].as_u64().unwrap() - e["fupos"].as_u64().unwrap()) as usize;
        let mut a = tar::Archive::new(&frame[at..]);
        let mut first = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(
            first.path().unwrap().to_str().unwrap(),
            e["path"].as_str().unwrap()
        );
        let mut data = Vec::new();
        first.read_to_end(&mut data).unwrap();
        assert_eq!(sha256_hex(&data), e["sha256"].as_str().unwrap(), "{e}");
    }
}

#[test]
fn index_archive_compose_and_increment() {
    let w = World::new();
    let src = w.p("src");
    build_tree(&src);
    let t0 = std::time::Instant::now();

    // (a) The first snapshot: everything is new.
    let r1 = w.create("snap/one.tar.zst", "snap/one.idx.zst", "-");
    eprintln!("create 1: {:?}", t0.elapsed());
    assert_eq!(r1["files"], 1509, "{r1}");
    assert_eq!(r1["files_new"], 1509);
    assert_eq!(r1["files_unchanged"], 0);
    assert_eq!(r1["symlinks"], 3);
    assert_eq!(r1["header"]["format"], "rewind-index/1");
    assert_eq!(r1["header"]["object"], "snap/one.tar.zst");
    assert_eq!(r1["header"]["frame"], 1 << 20);
    assert!(r1["frames"].as_u64().unwrap() >= 5, "{}", r1["frames"]);
    assert_eq!(
        r1["object"]["bytes"].as_u64().unwrap(),
        std::fs::metadata(w.store().join("snap/one.tar.zst"))
            .unwrap()
            .len()
    );
    assert!(r1["index"]["bytes"].as_u64().unwrap() > 0, "{r1}");
    let entries1 = &r1["entries"];
    assert_eq!(entries1[0]["path"], ".");
    for e in files_of(entries1) {
        let data = std::fs::read(src.join(e["path"].as_str().unwrap())).unwrap();
        assert_eq!(e["sha256"].as_str().unwrap(), sha256_hex(&data));
        assert_eq!(e["obj"], "snap/one.tar.zst");
    }
    check_locations(&w, entries1);
    // The index lists the archive's entries in the archive's order.
    let object1 = w.store().join("snap/one.tar.zst");
    let names: Vec<String> = entries1
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(real_list(&object1), names);
    real_extract(&object1, &w.p("real1"));
    assert_eq!(snapshot_contents(&src), snapshot_contents(&w.p("real1")));
    let out = w.compose("snap/one.idx.zst", "-", "full1");
    let c1 = ok(&out);
    assert_eq!(snapshot_contents(&src), snapshot_contents(&w.p("full1")));
    assert_eq!(c1["ranges"], 1, "one ranged read for one object: {c1}");
    assert_eq!(c1["files"], 1509);
    assert_eq!(c1["done"], true);
    eprintln!("full compose 1: {c1}");

    // (b) Change one file, add one, delete one, touch one; the second snapshot stores only those.
    std::fs::write(src.join("a/one.log"), "changed\n".repeat(50)).unwrap();
    std::fs::write(src.join("added.txt"), "new file").unwrap();
    std::fs::remove_file(src.join("top.txt")).unwrap();
    let touched = src.join("many/d3/f0003");
    std::fs::File::options()
        .write(true)
        .open(&touched)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
        .unwrap();
    let r2 = w.create("snap/two.tar.zst", "snap/two.idx.zst", "snap/one.idx.zst");
    assert_eq!(r2["files"], 1509, "{r2}");
    assert_eq!(r2["files_new"], 3, "{r2}");
    assert_eq!(r2["files_unchanged"], 1506);
    let touched_size = std::fs::metadata(&touched).unwrap().len();
    assert_eq!(r2["bytes_new"], 400 + 8 + touched_size);
    assert_eq!(r2["referenced"], serde_json::json!(["snap/one.tar.zst"]));
    let object2 = w.store().join("snap/two.tar.zst");
    let stored: BTreeSet<String> = real_list(&object2)
        .into_iter()
        .filter(|n| src.join(n).symlink_metadata().unwrap().is_file())
        .collect();
    assert_eq!(
        stored,
        ["a/one.log", "added.txt", "many/d3/f0003"]
            .map(String::from)
            .into()
    );
    check_locations(&w, &r2["entries"]);
    let c2 = ok(&w.compose("snap/two.idx.zst", "-", "full2"));
    assert_eq!(snapshot_contents(&src), snapshot_contents(&w.p("full2")));
    eprintln!("full compose 2: {c2}");

    // (c) One small file: one range, one frame of the object.
    let c3 = ok(&w.compose("snap/two.idx.zst", "many/d2/f0044", "one"));
    let size1 = std::fs::metadata(&object1).unwrap().len();
    eprintln!(
        "one-file compose: ranges {} stored_bytes {} of an object of {size1} bytes",
        c3["ranges"], c3["stored_bytes"]
    );
    assert_eq!(c3["ranges"], 1, "{c3}");
    assert_eq!(c3["files"], 1);
    assert!(c3["stored_bytes"].as_u64().unwrap() * 4 < size1, "{c3}");
    assert_eq!(
        std::fs::read(w.p("one/many/d2/f0044")).unwrap(),
        std::fs::read(src.join("many/d2/f0044")).unwrap()
    );
    assert_eq!(listing(&w.p("one")).len(), 3, "many, many/d2 and the file");
    // A directory: it and everything under it.
    ok(&w.compose("snap/two.idx.zst", "a", "sub"));
    assert_eq!(
        snapshot_contents(&src.join("a")),
        snapshot_contents(&w.p("sub/a"))
    );
    // A path matching nothing.
    let out = w.compose("snap/two.idx.zst", "no/such", "none");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no/such"), "{}", stderr(&out));
}

#[test]
fn a_corrupt_frame_fails_the_restore_naming_the_file() {
    let w = World::new();
    let src = w.p("src");
    build_tree(&src);
    let r = w.create("c/one.tar.zst", "c/one.idx.zst", "-");
    let big = files_of(&r["entries"])
        .into_iter()
        .find(|e| e["path"] == "big.bin")
        .unwrap()
        .clone();
    let path = w.store().join("c/one.tar.zst");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = (big["foff"].as_u64().unwrap() + big["flen"].as_u64().unwrap() / 2) as usize;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let out = w.compose("c/one.idx.zst", "-", "restored");
    assert!(!out.status.success());
    let err = stderr(&out);
    eprintln!("corrupt frame: {err}");
    assert!(err.contains("big.bin"), "{err}");
    assert!(err.contains("sha256"), "{err}");
    assert!(err.contains(big["sha256"].as_str().unwrap()), "{err}");
    // A file in another frame still restores alone.
    ok(&w.compose("c/one.idx.zst", "ten", "ten"));
    assert_eq!(std::fs::read(w.p("ten/ten")).unwrap(), b"0123456789");
}

#[test]
fn bad_options_are_refused_and_write_nothing() {
    let w = World::new();
    std::fs::create_dir_all(w.p("src")).unwrap();
    std::fs::write(w.p("src/f"), "x").unwrap();
    for (opts, want) in [
        ("compression = 'gzip', object = 'k/a'", "zstd"),
        ("compression = 'none', object = 'k/a'", "zstd"),
        ("", "object"),
    ] {
        let body = format!(
            "local tar = require('rewind.tar')\nlocal s = require('rewind.store').open(p.store)\nreturn tar.create{{from = {{p.from}}, to = s:writer('k/a'), index = s:writer('k/i'), {opts}}}"
        );
        let out = run_lua(
            w.tmp.path(),
            &body,
            &[("store", &w.s(&w.store())), ("from", &w.s(&w.p("src")))],
        );
        assert_eq!(out.status.code(), Some(2), "{}", text_of(&out));
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
        let files: Vec<_> = walkdir::WalkDir::new(w.store())
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .collect();
        assert!(files.is_empty(), "{files:?}");
    }
}
