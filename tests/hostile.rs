//! Hostile archives and manifests, restored with the real binary from a local store. Each case is a
//! snapshot in the store (a tar built here with the `tar` crate's low-level header API, bytes written by
//! hand where the crate would refuse, and a manifest) restored over an existing directory with
//! `overwrite=true`. Every case must end in a clear error (exit 1) with `to` unchanged (its listing with
//! hashes), nothing written outside it (a sentinel directory beside it, no leftovers), and nothing
//! deleted from the store. Manifest cases also go through `verify` and `prune`.

mod common;
use common::archive::*;
use common::process::{files, text};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tar::EntryType;

/// A tar stream built header by header. Names and link targets go into the header's raw fields, so
/// absolute paths and `..` (which the crate's own setters refuse) are written as they are.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn entry(mut self, name: &str, kind: EntryType, link: &str, data: &[u8], size: u64) -> Tar {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Tar {
        self.entry(name, EntryType::Regular, "", data, data.len() as u64)
    }
    fn dir(self, name: &str) -> Tar {
        self.entry(name, EntryType::Directory, "", b"", 0)
    }
    fn symlink(self, name: &str, target: &str) -> Tar {
        self.entry(name, EntryType::Symlink, target, b"", 0)
    }
    fn hardlink(self, name: &str, target: &str) -> Tar {
        self.entry(name, EntryType::Link, target, b"", 0)
    }
    fn node(self, name: &str, kind: EntryType) -> Tar {
        self.entry(name, kind, "", b"", 0)
    }
    /// The end-of-archive marker: two zero blocks.
    fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
    /// The stream as it is, without the end marker.
    fn cut(self) -> Vec<u8> {
        self.0
    }
}

struct Case {
    name: &'static str,
    /// The archive object; `None`: a good archive of a small tree.
    archive: Option<Vec<u8>>,
    /// Changes the (otherwise valid) manifest; a body replaces its text.
    manifest: Box<dyn Fn(&mut serde_json::Value)>,
    body: Option<&'static [u8]>,
    /// What the error must say.
    expect: String,
    /// Extra restore-dir params.
    extra: &'static [&'static str],
}

fn case(name: &'static str, archive: Vec<u8>, expect: &str) -> Case {
    Case {
        name,
        archive: Some(archive),
        manifest: Box::new(|_| {}),
        body: None,
        expect: expect.to_string(),
        extra: &[],
    }
}

fn manifest_case(
    name: &'static str,
    body: Option<&'static [u8]>,
    edit: impl Fn(&mut serde_json::Value) + 'static,
    expect: &str,
) -> Case {
    Case {
        name,
        archive: None,
        manifest: Box::new(edit),
        body,
        expect: expect.to_string(),
        extra: &[],
    }
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

fn cases(sentinel: &Path) -> Vec<Case> {
    let s = sentinel.display().to_string();
    let through = "it would be written through the symlink";
    let big = Tar::default()
        .file("big", &vec![7u8; 5000])
        .file("next", b"1")
        .end();
    let mut many = Tar::default();
    for _ in 0..10_000 {
        many = many.file("same", b"x");
    }
    let good = Tar::default().dir("d").file("d/f", b"data").end();
    vec![
        case(
            "dotdot",
            Tar::default()
                .file("ok", b"1")
                .file("../sentinel/pwned", b"x")
                .end(),
            "'../sentinel/pwned': its path contains '..'",
        ),
        case(
            "dotdot-inner",
            Tar::default().file("a/../../sentinel/pwned", b"x").end(),
            "its path contains '..'",
        ),
        case(
            "absolute",
            Tar::default().file(&format!("{s}/pwned"), b"x").end(),
            "its path is absolute",
        ),
        case(
            "symlink-abs-then-write",
            Tar::default()
                .symlink("esc", &s)
                .file("esc/pwned", b"x")
                .end(),
            &format!("'esc/pwned': {through} 'esc'"),
        ),
        case(
            "symlink-rel-then-write",
            Tar::default()
                .symlink("esc", "../sentinel")
                .file("esc/pwned", b"x")
                .end(),
            &format!("{through} 'esc'"),
        ),
        case(
            "symlink-then-dir-through",
            Tar::default()
                .symlink("esc", "../sentinel")
                .dir("esc/sub")
                .end(),
            &format!("{through} 'esc'"),
        ),
        case(
            "symlink-then-same-name-file",
            Tar::default()
                .symlink("victim", &format!("{s}/victim"))
                .file("victim", b"pwned")
                .end(),
            "'victim': it is already in the destination",
        ),
        case(
            "symlink-then-same-name-dir",
            Tar::default().symlink("d", "../sentinel").dir("d").end(),
            "'d': it is already in the destination",
        ),
        case(
            "dangling-chain-then-write",
            Tar::default()
                .dir("a")
                .symlink("a/b", "..")
                .symlink("c", "a/b/..")
                .file("c/sentinel/pwned", b"x")
                .end(),
            &format!("{through} 'c'"),
        ),
        case(
            "dangling-chain-x",
            Tar::default()
                .dir("a")
                .symlink("a/b", "..")
                .symlink("c", "a/b/../x")
                .file("c/pwned", b"x")
                .end(),
            &format!("{through} 'c'"),
        ),
        Case {
            extra: &["symlinks=inside"],
            ..case(
                "dangling-chain-symlinks-inside",
                Tar::default()
                    .dir("a")
                    .symlink("a/b", "..")
                    .symlink("c", "a/b/../sentinel")
                    .end(),
                "'c': it is a symlink to 'a/b/../sentinel', which leads outside the destination",
            )
        },
        case(
            "hardlink-dotdot",
            Tar::default().hardlink("h", "../sentinel/victim").end(),
            "hard link target '../sentinel/victim': its path contains '..'",
        ),
        case(
            "hardlink-absolute",
            Tar::default().hardlink("h", &format!("{s}/victim")).end(),
            "its path is absolute",
        ),
        case(
            "hardlink-through-symlink",
            Tar::default()
                .symlink("esc", "../sentinel")
                .hardlink("h", "esc/victim")
                .end(),
            "hard link target 'esc/victim' goes through the symlink 'esc'",
        ),
        case(
            "hardlink-to-nothing",
            Tar::default().hardlink("h", "missing").end(),
            "not a file extracted inside the destination",
        ),
        case(
            "char-device",
            Tar::default().node("null", EntryType::Char).end(),
            "'null': it is a char device",
        ),
        case(
            "block-device",
            Tar::default().node("sda", EntryType::Block).end(),
            "'sda': it is a block device",
        ),
        case(
            "fifo",
            Tar::default().node("p", EntryType::Fifo).end(),
            "'p': it is a fifo",
        ),
        case(
            "declared-size-beyond-data",
            Tar::default()
                .entry("huge", EntryType::Regular, "", &[1u8; 1000], 1 << 40)
                .cut(),
            "'huge' declares 1099511627776 bytes but the archive ends after 1024: it is truncated",
        ),
        case(
            "truncated-in-data",
            big[..3000].to_vec(),
            "'big' declares 5000 bytes but the archive ends after 2488: it is truncated",
        ),
        case(
            "truncated-in-header",
            big[..5632 + 100].to_vec(),
            "the archive is truncated",
        ),
        case(
            "truncated-no-end-marker",
            Tar::default().file("a", b"1").cut(),
            "the archive ends without its end-of-archive marker: it is truncated",
        ),
        case(
            "truncated-zstd",
            {
                let z = zstd(&good);
                z[..z.len() / 2].to_vec()
            },
            "the archive is truncated",
        ),
        case(
            "same-name-10000-times",
            zstd(&many.end()),
            "'same': it is already in the destination",
        ),
        manifest_case(
            "manifest-not-json",
            Some(b"{\"format\": \"rewind.snapshot/1\", \"id\":"),
            |_| {},
            "not JSON",
        ),
        manifest_case(
            "manifest-not-a-manifest",
            Some(b"{\"hello\": \"world\"}"),
            |_| {},
            "not a rewind manifest",
        ),
        manifest_case(
            "manifest-size-lie",
            None,
            |m| m["objects"][0]["size"] = 12.into(),
            "bytes where 12 were expected",
        ),
        manifest_case(
            "manifest-hash-lie",
            None,
            |m| m["objects"][0]["sha256"] = "0".repeat(64).into(),
            "is corrupt: sha256",
        ),
        manifest_case(
            "manifest-key-other-prefix",
            None,
            |m| m["objects"][0]["key"] = "dirs/victim/20240101/data_120000.tar".into(),
            "'dirs/victim/20240101/data_120000.tar' is not dirs/h/20240601/data_120000.tar",
        ),
        manifest_case(
            "manifest-key-dotdot",
            None,
            |m| {
                m["objects"][0]["key"] =
                    "dirs/h/20240601/../../victim/20240101/data_120000.tar".into()
            },
            "is not dirs/h/20240601/data_120000.tar",
        ),
        manifest_case(
            "manifest-object-name-path",
            None,
            |m| m["objects"][0]["name"] = "../x".into(),
            "object name '../x'",
        ),
        manifest_case(
            "manifest-id-path",
            None,
            |m| m["id"] = "x/../../../outside/pwn".into(),
            "its id 'x/../../../outside/pwn' is not 20240601-120000",
        ),
        manifest_case(
            "manifest-prefix-path",
            None,
            |m| m["prefix"] = "../../outside".into(),
            "its prefix '../../outside'",
        ),
    ]
}

/// What the case directory holds, the store aside (it is compared by its files).
fn outside_store(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut m = hashed(dir);
    m.retain(|p, _| !p.starts_with("store"));
    m
}

fn store_files(store: &Path) -> BTreeMap<PathBuf, String> {
    files(store)
        .into_iter()
        .map(|p| {
            let h = sha256_hex(&std::fs::read(&p).unwrap());
            (p.strip_prefix(store).unwrap().to_path_buf(), h)
        })
        .collect()
}

#[test]
fn hostile_archives_and_manifests_are_refused_and_change_nothing() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut refused = 0;
    let all = cases(&tmp.path().join("case/sentinel"));
    let count = all.len();
    let good = Tar::default().dir("d").file("d/f", b"data").end();
    for c in all {
        // Each case in the same place (the sentinel's absolute path is in the archives), made anew.
        let dir = tmp.path().join("case");
        let _ = std::fs::remove_dir_all(&dir);
        let store = dir.join("store");
        let to = dir.join("to");
        let sentinel = dir.join("sentinel");
        std::fs::create_dir_all(to.join("old")).unwrap();
        std::fs::write(to.join("old/file"), "old tree").unwrap();
        std::fs::create_dir_all(&sentinel).unwrap();
        std::fs::write(sentinel.join("victim"), "keep").unwrap();
        write_snapshot(
            &store,
            "dirs/victim",
            "20240101-120000",
            &[("data", "tar", &good)],
            |_| {},
        );
        // An older valid snapshot: a restore of "the newest" must not fall back to it.
        write_snapshot(
            &store,
            "dirs/h",
            "20240501-120000",
            &[("data", "tar", &good)],
            |_| {},
        );
        let archive = c.archive.clone().unwrap_or_else(|| good.clone());
        let manifest = write_snapshot(
            &store,
            "dirs/h",
            "20240601-120000",
            &[("data", "tar", &archive)],
            |m| (c.manifest)(m),
        );
        if let Some(b) = c.body {
            std::fs::write(&manifest, b).unwrap();
        }
        let before = outside_store(&dir);
        let stored = store_files(&store);

        let mut args = vec!["restore-dir", "prefix=dirs/h", "to=to", "overwrite=true"];
        args.extend_from_slice(c.extra);
        let out = run_in(&store, &dir, &args);
        let err = stderr(&out);
        let name = c.name;
        assert_eq!(
            out.status.code(),
            Some(1),
            "case {name}: expected a refusal: {}",
            text(&out)
        );
        assert!(
            err.contains(&c.expect),
            "case {name}: expected '{}' in: {err}",
            c.expect
        );
        assert!(!err.contains("panicked"), "case {name}: {err}");
        assert_eq!(
            outside_store(&dir),
            before,
            "case {name}: `to` or what is beside it changed"
        );
        assert_eq!(
            store_files(&store),
            stored,
            "case {name}: the store changed"
        );

        if c.archive.is_none() {
            // Manifest cases: verify fails naming the problem; prune deletes nothing.
            let out = run_in(&store, &dir, &["verify", "prefix=dirs/h", "snapshot=all"]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "case {name}: verify: {}",
                text(&out)
            );
            assert!(
                stderr(&out).contains(&c.expect),
                "case {name}: verify: {}",
                text(&out)
            );
            let out = run_in(&store, &dir, &["prune", "prefix=dirs/h", "keep_within=1d"]);
            assert!(out.status.success(), "case {name}: prune: {}", text(&out));
            assert_eq!(
                store_files(&store),
                stored,
                "case {name}: prune deleted something"
            );
            assert_eq!(
                outside_store(&dir),
                before,
                "case {name}: prune changed files"
            );
        }
        println!("refused: {name}");
        refused += 1;
    }
    println!(
        "{refused} of {count} hostile cases refused in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(refused, count);
}
