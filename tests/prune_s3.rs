//! `rewind run prune` against a real S3-protocol server (moto, see tests/common/s3.rs): snapshots and
//! incomplete ones seeded in a bucket through rewind.store, then the bucket is checked with unsigned
//! ListObjectsV2 requests (not through rewind) and moto's request log (deletes were batched).

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use common::process::{BIN, text};
use common::s3::S3Server;
use common::store::run_script;

const BUCKET: &str = "prune";
/// The store is `s3://prune/rw`, the snapshots under its prefix `snap`: bucket keys are `rw/snap/...`.
const STORE: &str = "s3://prune/rw";

/// Seeds 30 daily snapshots (2025-03-01..30 at 03:00 UTC, two objects + a manifest each; day 3 tagged
/// `safety`), an old incomplete snapshot (2025-03-10 12:00, two objects, no manifest) and a fresh one
/// (now, one object). Returns the fresh one's id.
fn seed(server: &S3Server, dir: &std::path::Path) -> String {
    let script = format!(
        r#"
local store = require("rewind.store")
local json = require("rewind.json")
local time = require("rewind.time")
return {{ description = "seed", params = {{}}, run = function()
  local st = store.open("{STORE}")
  local function objects(day, hms, names)
    local out = {{}}
    for _, name in ipairs(names) do
      local key = string.format("snap/%s/%s_%s.bin", day, name, hms)
      st:put(key, name .. day)
      out[#out + 1] = {{ name = name, key = key, size = #name + 8, sha256 = "", ext = "bin" }}
    end
    return out
  end
  for d = 1, 30 do
    local day, hms = string.format("202503%02d", d), "030000"
    local m = {{ format = "rewind.snapshot/1", id = day .. "-" .. hms, prefix = "snap", procedure = "druid-backup",
      target = "druid", host = "h", started_at = string.format("2025-03-%02dT03:00:00Z", d),
      finished_at = string.format("2025-03-%02dT03:00:00Z", d), params = {{}},
      tags = d == 3 and {{ "safety" }} or json.array(), rewind_version = "0",
      objects = objects(day, hms, {{ "shared", "meta" }}) }}
    st:put(string.format("snap/%s/manifest_%s.json", day, hms), json.encode(m))
  end
  objects("20250310", "120000", {{ "shared", "meta" }})
  local now = time.now()
  local day, hms = time.format(now, "%Y%m%d"), time.format(now, "%H%M%S")
  objects(day, hms, {{ "shared" }})
  return {{ fresh = day .. "-" .. hms }}
end }}
"#
    );
    let out = run_script(dir, &script, &server.env());
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("seed result");
    v["fresh"].as_str().unwrap().to_string()
}

/// The result JSON that `rewind run prune --json` prints after the keep/remove lines.
fn prune_result(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let start = if stdout.starts_with('{') {
        0
    } else {
        stdout
            .find("\n{")
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{}", text(out)))
    };
    serde_json::from_str(stdout[start..].trim()).unwrap_or_else(|_| panic!("{}", text(out)))
}

fn keys(server: &S3Server) -> BTreeSet<String> {
    server.list_keys(BUCKET, "rw/").into_iter().collect()
}

/// The bucket keys of snapshot day `d` (2025-03-DD 03:00): manifest and both objects.
fn snapshot_keys(d: u32) -> Vec<String> {
    let day = format!("202503{d:02}");
    vec![
        format!("rw/snap/{day}/manifest_030000.json"),
        format!("rw/snap/{day}/shared_030000.bin"),
        format!("rw/snap/{day}/meta_030000.bin"),
    ]
}

fn deletes(server: &S3Server) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| {
            r.starts_with(&format!("POST /{BUCKET}?delete"))
                || r.starts_with(&format!("POST /{BUCKET}/?delete"))
        })
        .count()
}

#[test]
fn prune_in_s3_deletes_exactly_the_removed_snapshots_in_batches() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let tmp = tempfile::tempdir().unwrap();
    let fresh = seed(&server, tmp.path());
    let (fresh_day, fresh_hms) = fresh.split_once('-').unwrap();
    let fresh_key = format!("rw/snap/{fresh_day}/shared_{fresh_hms}.bin");
    let old_incomplete = [
        "rw/snap/20250310/shared_120000.bin".to_string(),
        "rw/snap/20250310/meta_120000.bin".to_string(),
    ];

    let mut all: BTreeSet<String> = (1..=30).flat_map(snapshot_keys).collect();
    all.extend(old_incomplete.iter().cloned());
    all.insert(fresh_key.clone());
    assert_eq!(keys(&server), all, "seeded bucket");

    let prune = |extra: &[&str]| -> Output {
        Command::new(BIN)
            .args([
                "run",
                "prune",
                "--json",
                &format!("store={STORE}"),
                "prefix=snap",
                "keep_daily=7",
                "tags=safety",
                "batch=10",
            ])
            .args(extra)
            .envs(server.env())
            .env("HOME", tmp.path())
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .output()
            .unwrap()
    };

    // Dry run: explains, deletes nothing (reads every manifest: cold cache).
    let before = deletes(&server);
    let o = prune(&["dry_run=true"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = prune_result(&o);
    assert_eq!(r["snapshots"], 30, "{r}");
    assert_eq!(
        r["kept"], 8,
        "days 24..30 (keep-daily 7) and day 3 (tag safety): {r}"
    );
    assert_eq!(r["removed"], 22, "{r}");
    assert_eq!(r["incomplete_removed"], 1, "{r}");
    assert_eq!(
        r["incomplete_kept"], 1,
        "the fresh one is within the grace period: {r}"
    );
    assert_eq!(r["manifests_cached"], 0, "{r}");
    assert_eq!(r["delete_batches"], 0, "{r}");
    assert_eq!(r["deleted_keys"], 0, "{r}");
    let t = text(&o);
    assert!(t.contains("would remove 20250301-030000"), "{t}");
    assert!(t.contains("keep-tag safety"), "{t}");
    assert_eq!(keys(&server), all, "a dry run deletes nothing");
    assert_eq!(
        deletes(&server) - before,
        0,
        "a dry run sends no DeleteObjects (the lease's release is a conditional DeleteObject)"
    );

    // The real prune: manifests from the local cache, 22 manifests then 44 + 2 objects, 10 keys a batch.
    let before = deletes(&server);
    let o = prune(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let r = prune_result(&o);
    assert_eq!(r["manifests_cached"], 30, "{r}");
    assert_eq!(r["removed"], 22, "{r}");
    assert_eq!(r["deleted_keys"], 22 + 44 + 2, "{r}");
    assert_eq!(
        r["delete_batches"],
        3 + 5,
        "22 manifests in 3 batches, 46 objects in 5: {r}"
    );
    assert_eq!(
        deletes(&server) - before,
        8,
        "one DeleteObjects request per batch"
    );
    assert!(
        !server.requests().iter().any(|r| {
            r.starts_with(&format!("DELETE /{BUCKET}/")) && !r.contains("/locks/target.json")
        }),
        "no key deleted one request at a time (but the lease, released by a conditional DeleteObject)"
    );

    let mut expected: BTreeSet<String> = [3, 24, 25, 26, 27, 28, 29, 30]
        .into_iter()
        .flat_map(snapshot_keys)
        .collect();
    expected.insert(fresh_key.clone());
    assert_eq!(keys(&server), expected, "exactly the kept snapshots remain");

    // Pruning again removes nothing more.
    let o = prune(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let r = prune_result(&o);
    assert_eq!(r["snapshots"], 8, "{r}");
    assert_eq!(r["removed"], 0, "{r}");
    assert_eq!(r["delete_batches"], 0, "{r}");
    assert_eq!(keys(&server), expected);
}
