//! Property tests (proptest) for what hostile or odd input reaches: the JSON, YAML and msgpack decoders,
//! params checking, and tar extraction. They check the same properties as the fuzz targets under
//! `fuzz/` (same harness, tests/common/lua_harness.rs), with a bounded number of cases so CI stays quick;
//! `PROPTEST_CASES=N` runs more.

mod common;

use std::cell::OnceCell;

use common::lua_harness::Harness;
use proptest::prelude::*;
use serde_json::{Map, Value as Json};

thread_local! {
    static HARNESS: OnceCell<Harness> = const { OnceCell::new() };
}

fn with<R>(f: impl FnOnce(&Harness) -> R) -> R {
    HARNESS.with(|h| f(h.get_or_init(Harness::new)))
}

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        (-1e15f64..1e15)
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        "\\PC{0,12}".prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn decoders_survive_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        with(|h| {
            h.round_trip("json", &bytes);
            h.round_trip("yaml", &bytes);
            h.round_trip("msgpack", &bytes);
        });
    }

    #[test]
    fn encoded_values_decode_unchanged(v in json_value()) {
        let text = serde_json::to_vec(&v).unwrap();
        with(|h| {
            h.round_trip("json", &text);
            h.round_trip("yaml", &text); // JSON is YAML
            h.round_trip("msgpack", &rmp_serde::to_vec_named(&v).unwrap());
        });
    }

    #[test]
    fn params_from_the_command_line_and_files_check_cleanly(
        cli in prop::collection::vec(("[a-z0-9.]{0,8}", "\\PC{0,16}"), 0..6),
        file in prop::collection::btree_map("[a-z.]{1,8}", json_value(), 0..4),
    ) {
        let file: Map<String, Json> = file.into_iter().collect();
        with(|h| {
            h.params(&cli, None);
            h.params(&[], Some(&file));
            h.params(&cli, Some(&file));
        });
    }
}

/// Manifest text: valid ones made hostile piece by piece (ids, prefixes and keys that lead elsewhere).
fn manifest() -> impl Strategy<Value = (String, String)> {
    let part = prop_oneof![
        Just("..".to_string()),
        Just("dirs".to_string()),
        Just("x".to_string()),
        Just("20240101".to_string()),
        Just("".to_string()),
        "[a-z0-9_.-]{1,8}",
    ];
    let path = prop::collection::vec(part, 1..5).prop_map(|p| p.join("/"));
    let flags = (any::<bool>(), any::<bool>());
    (path.clone(), path.clone(), path, flags, 0u64..100).prop_map(
        |(prefix, id_tail, key, (good_id, good_key), size)| {
            let id = if good_id {
                "20240101-010203".to_string()
            } else {
                id_tail
            };
            // Half the keys are where the object belongs, so accepted manifests are checked too.
            let key = if good_key {
                format!("{prefix}/20240101/data_010203.tar.zst")
            } else {
                key
            };
            let body = serde_json::json!({
                "format": "rewind.snapshot/1",
                "id": id,
                "prefix": prefix,
                "procedure": "backup-dir",
                "objects": [{"name": "data", "ext": "tar.zst", "key": key, "size": size,
                             "sha256": "0".repeat(64)}],
            });
            (
                body.to_string(),
                format!("{prefix}/20240101/manifest_010203.json"),
            )
        },
    )
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn manifests_are_refused_or_delete_only_in_their_own_directory((body, key) in manifest()) {
        with(|h| h.manifest(body.as_bytes(), &key));
    }

    #[test]
    fn arbitrary_manifest_bytes_and_keys_are_answered(
        body in prop::collection::vec(any::<u8>(), 0..256),
        key in "\\PC{0,40}",
    ) {
        with(|h| {
            h.manifest(&body, &key);
            h.snapshot_key(key.as_bytes());
        });
    }
}

/// One tar entry of an archive built to probe extraction: odd names, links that point anywhere.
#[derive(Debug, Clone)]
enum Entry {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String, String),
    Hardlink(String, String),
}

fn name() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("a".to_string()),
        Just("b".to_string()),
        Just("outside".to_string()),
        "[a-z]{1,3}",
    ];
    (any::<bool>(), prop::collection::vec(part, 1..4))
        .prop_map(|(abs, parts)| format!("{}{}", if abs { "/" } else { "" }, parts.join("/")))
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (name(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(n, d)| Entry::File(n, d)),
        name().prop_map(Entry::Dir),
        (name(), name()).prop_map(|(n, t)| Entry::Symlink(n, t)),
        (name(), name()).prop_map(|(n, t)| Entry::Hardlink(n, t)),
    ]
}

/// A tar of the entries with names written raw (the tar crate's builder refuses `..`).
fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (path, data): (&str, &[u8]) = match e {
            Entry::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                (n, d)
            }
            Entry::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                (n, &[])
            }
            Entry::Symlink(n, t) | Entry::Hardlink(n, t) => {
                h.set_entry_type(if matches!(e, Entry::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                let link = &mut h.as_old_mut().linkname;
                let t = t.as_bytes();
                link[..t.len().min(100)].copy_from_slice(&t[..t.len().min(100)]);
                (n, &[])
            }
        };
        let name = &mut h.as_old_mut().name;
        let p = path.as_bytes();
        name[..p.len().min(100)].copy_from_slice(&p[..p.len().min(100)]);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn extraction_never_writes_outside_its_destination(entries in prop::collection::vec(entry(), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        with(|h| h.extract_confined(dir.path(), &archive(&entries)));
    }

    #[test]
    fn extraction_of_arbitrary_bytes_is_confined(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().unwrap();
        with(|h| h.extract_confined(dir.path(), &bytes));
    }
}

#[test]
fn the_confinement_check_sees_a_write_outside() {
    // Extracting into `outside` while checking `to` must be caught: the property above can fail.
    let dir = tempfile::tempdir().unwrap();
    let tar = archive(&[Entry::File("new.txt".into(), b"x".to_vec())]);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        with(|h| h.extract_checked(dir.path(), &tar, "outside", "to"))
    }));
    assert!(
        caught.is_err(),
        "a write outside the destination went unnoticed"
    );
}

#[test]
fn generated_archives_are_both_extracted_and_refused() {
    // The generator must reach both sides: archives that extract, and archives that are refused.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(entry(), 1..8);
    for _ in 0..64 {
        let entries = strategy.new_tree(&mut runner).unwrap().current();
        let dir = tempfile::tempdir().unwrap();
        with(|h| h.extract_confined(dir.path(), &archive(&entries)));
    }
    let (ok, refused) = common::lua_harness::EXTRACTED.with(|n| n.get());
    assert!(ok > 0 && refused > 0, "extracted {ok}, refused {refused}");
}

#[test]
fn generated_manifests_are_both_accepted_and_refused() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = manifest();
    for _ in 0..200 {
        let (body, key) = strategy.new_tree(&mut runner).unwrap().current();
        with(|h| h.manifest(body.as_bytes(), &key));
    }
    let (accepted, refused) = with(|h| h.manifest_counts());
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
}
