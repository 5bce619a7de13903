//! Leases on a real S3-protocol server (moto), some behind the fault proxy (tests/common/fault_proxy.rs):
//! two backups started together, a conditional write whose answer was lost, transient errors during
//! renewal, a lease that cannot be renewed, and a lease taken over while the holder uploads.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, Rule};
use common::lease::*;
use common::process::text;
use common::s3::S3Server;

const BUCKET: &str = "leases";

/// The environment for rewind to reach `endpoint` (moto, or the proxy in front of it).
fn env_for(server: &S3Server, endpoint: &str) -> Vec<(&'static str, String)> {
    let mut env = server.env();
    for (k, v) in env.iter_mut() {
        if *k == "AWS_ENDPOINT_URL" {
            *v = endpoint.to_string();
        }
    }
    env
}

fn store() -> String {
    format!("store=s3://{BUCKET}")
}

/// The lease of `prefix`, read straight from moto (not through rewind or the proxy).
fn lease(server: &S3Server, prefix: &str) -> Option<serde_json::Value> {
    let (status, body) = server.owner_request(
        "GET",
        &format!("/{BUCKET}/{prefix}/locks/target.json"),
        None,
    );
    match status {
        404 => None,
        200 => Some(serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"))),
        s => panic!("GET lease: {s} {body}"),
    }
}

fn manifests(server: &S3Server, prefix: &str) -> Vec<String> {
    server
        .list_keys(BUCKET, &format!("{prefix}/"))
        .into_iter()
        .filter(|k| k.contains("/manifest_"))
        .collect()
}

fn setup() -> (S3Server, tempfile::TempDir) {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(tmp.path().join("data/a.txt"), "a\n").unwrap();
    (server, tmp)
}

fn succeeded(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "rewind failed: {}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(out)))
}

/// 50 trials on the S3 server: exactly one of two backups started together runs; the other fails naming
/// the holder and leaves no object and no lease.
#[test]
fn contention_on_s3() {
    let (server, tmp) = setup();
    random_file(&tmp.path().join("data/blob.bin"), 4 << 20, 11);
    let env = server.env();
    let failures = contend("S3, moto", 50, |i| {
        let prefix = format!("trial/{i}");
        let args = vec![
            "backup-dir".to_string(),
            "from=data".into(),
            store(),
            format!("prefix={prefix}"),
            "compression=none".into(),
        ];
        let runs = start_two(tmp.path(), &env, &args);
        let keys = server.list_keys(BUCKET, &format!("{prefix}/"));
        let trial = judge(&runs, &prefix);
        if matches!(trial, Trial::Won(_))
            && (keys.len() != 2
                || !keys.iter().any(|k| k.contains("/manifest_"))
                || !keys.iter().any(|k| k.contains("/data_")))
        {
            return Trial::Failed(format!("the bucket holds {keys:?}"));
        }
        trial
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(server.multipart_uploads(BUCKET), 0);
}

/// The answer to the lease's conditional PUT is lost (the server applied it) and the SDK sends it again:
/// the lease found is this job's own, so the backup runs, and releases it.
#[test]
fn a_lost_answer_to_the_lease_create_is_recognised() {
    let (server, tmp) = setup();
    let proxy = FaultProxy::start(server.port, 1);
    proxy.add(
        Rule::new(Fault::DropAnswer)
            .method("PUT")
            .path("/locks/target.json")
            .nth(1),
    );
    let env = env_for(&server, &proxy.endpoint);
    let r = succeeded(&run(
        tmp.path(),
        &env,
        &["backup-dir", "from=data", &store()],
    ));
    assert!(r["snapshot"].is_string(), "{r}");
    assert_eq!(proxy.faults(), 1, "{:?}", proxy.seen());
    assert!(
        proxy.count("PUT", "/locks/target.json") >= 2,
        "the SDK sent it again"
    );
    assert!(lease(&server, "dirs/data").is_none(), "released");
    assert_eq!(manifests(&server, "dirs/data").len(), 1);
}

/// The same for the manifest: the PUT was applied, its answer lost; the backup succeeds.
#[test]
fn a_lost_answer_to_the_manifest_create_is_recognised() {
    let (server, tmp) = setup();
    let proxy = FaultProxy::start(server.port, 2);
    proxy.add(
        Rule::new(Fault::DropAnswer)
            .method("PUT")
            .path("/manifest_")
            .nth(1),
    );
    let env = env_for(&server, &proxy.endpoint);
    let r = succeeded(&run(
        tmp.path(),
        &env,
        &["backup-dir", "from=data", &store()],
    ));
    assert_eq!(proxy.faults(), 1, "{:?}", proxy.seen());
    let m = manifests(&server, "dirs/data");
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].contains(&r["snapshot"].as_str().unwrap()[9..]),
        "{m:?} {r}"
    );
    assert!(lease(&server, "dirs/data").is_none(), "released");
}

/// Transient errors on the lease (GETs and renewal PUTs answered 500/503, more than the SDK's own 5
/// attempts) are retried within the lease's time: the lease never lapses and the job ends well.
#[test]
fn transient_errors_during_renewal_are_retried() {
    let (server, tmp) = setup();
    let proxy = FaultProxy::start(server.port, 3);
    // PUT 1 creates the lease; renewals 2..=8 fail (7 in a row: more than one SDK call's 5 attempts).
    proxy.add(
        Rule::new(Fault::Status(503, "SlowDown"))
            .method("PUT")
            .path("/locks/target.json")
            .matches(2, 8),
    );
    proxy.add(
        Rule::new(Fault::Status(500, "InternalError"))
            .method("GET")
            .path("/locks/target.json")
            .matches(1, 5),
    );
    let env = env_for(&server, &proxy.endpoint);
    let (holder, _) = spawn_holder(tmp.path(), &env, &[&store()], "dirs/data", "12s", 20);
    let first = lease(&server, "dirs/data").expect("lease");
    // Watch the lease while the holder runs: it must always be in force.
    let t = Instant::now();
    let mut lapsed = Vec::new();
    while t.elapsed() < Duration::from_secs(18) {
        if let Some(l) = lease(&server, "dirs/data") {
            let left = l["expires"].as_f64().unwrap() - now();
            if left < 0.0 {
                lapsed.push(format!(
                    "{:.1}s: expired {:.1}s ago",
                    t.elapsed().as_secs_f64(),
                    -left
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = holder.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(lapsed.is_empty(), "the lease lapsed: {lapsed:?}");
    let faults = proxy
        .seen()
        .iter()
        .filter(|s| s.fault.is_some() && s.method == "PUT")
        .count();
    assert_eq!(faults, 7, "{:?}", proxy.seen());
    let renewed = proxy
        .seen()
        .iter()
        .filter(|s| {
            s.method == "PUT" && s.target.contains("/locks/target.json") && s.status == Some(200)
        })
        .count();
    assert!(
        renewed >= 2,
        "created and renewed after the errors: {:?}",
        proxy.seen()
    );
    assert!(first["expires"].as_f64().is_some());
    assert!(lease(&server, "dirs/data").is_none(), "released");
}

/// A lease that cannot be renewed before it expires (every renewal refused) stops its holder, saying so.
#[test]
fn a_lease_that_cannot_be_renewed_stops_its_holder() {
    let (server, tmp) = setup();
    let proxy = FaultProxy::start(server.port, 4);
    proxy.add(
        Rule::new(Fault::Status(503, "SlowDown"))
            .method("PUT")
            .path("/locks/target.json")
            .matches(2, u64::MAX),
    );
    let env = env_for(&server, &proxy.endpoint);
    let (holder, _) = spawn_holder(tmp.path(), &env, &[&store()], "dirs/data", "6s", 60);
    let t = Instant::now();
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        t.elapsed() < Duration::from_secs(12),
        "stopped around its expiry: {:?}",
        t.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lost the lease on dirs/data") && err.contains("could not be renewed"),
        "{err}"
    );
}

/// A backup whose lease is taken over while it uploads (another process overwrote it) stops at its next
/// renewal: its upload is abandoned, no manifest appears, and the new holder's lease stays.
#[test]
fn a_lease_taken_over_aborts_the_backup_before_its_manifest() {
    let (server, tmp) = setup();
    random_file(&tmp.path().join("data/blob.bin"), 1 << 20, 5);
    let proxy = FaultProxy::start(server.port, 5);
    // The archive's upload stalls for 20 s: the backup is mid-job, holding its lease, meanwhile.
    proxy.add(Rule::new(Fault::Stall(20_000)).method("PUT").path("/data_"));
    let env = env_for(&server, &proxy.endpoint);
    let backup = rewind_with(tmp.path(), &env)
        .args([
            "run",
            "backup-dir",
            "from=data",
            "compression=none",
            "lock_ttl=3s",
            &store(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while proxy.count("PUT", "/data_") == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the upload never started: {:?}",
            proxy.seen()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another process writes its own lease over this one (as a host with a skewed clock would).
    let intruder = serde_json::json!({
        "owner": "intruder", "host": "elsewhere", "pid": 4242, "token": "intruder-token",
        "acquired_at": "2030-01-01T00:00:00Z", "expires_at": "2030-01-01T00:01:00Z", "expires": now() + 60.0,
    });
    let (status, body) = server.owner_request(
        "PUT",
        &format!("/{BUCKET}/dirs/data/locks/target.json"),
        Some(intruder.to_string().into_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let out = backup.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "stopped at its next renewal, not after the upload: {:?} {}",
        t.elapsed(),
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lost the lease on dirs/data")
            && err.contains("intruder on elsewhere (pid 4242)"),
        "{err}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(manifests(&server, "dirs/data").is_empty(), "no manifest");
    assert_eq!(
        lease(&server, "dirs/data").expect("kept")["owner"],
        "intruder",
        "the new holder's lease stays"
    );
}

/// The proxy does what its rules say (a check of the test tool itself): a reset, a 503 SlowDown with
/// S3's XML body, a stall, and seeded chance (the same seed, the same faults). A backup through a reset
/// lease create and a throttled manifest PUT still succeeds (the SDK resends both).
#[test]
fn the_fault_proxy_applies_its_rules() {
    let (server, tmp) = setup();
    let proxy = FaultProxy::start(server.port, 9);
    proxy.add(
        Rule::new(Fault::Reset)
            .method("PUT")
            .path("/locks/target.json")
            .nth(1),
    );
    proxy.add(
        Rule::new(Fault::Status(503, "SlowDown"))
            .method("PUT")
            .path("/manifest_")
            .nth(1),
    );
    proxy.add(
        Rule::new(Fault::Stall(300))
            .method("GET")
            .path("list-type=2")
            .nth(1),
    );
    let env = env_for(&server, &proxy.endpoint);
    let t = Instant::now();
    succeeded(&run(
        tmp.path(),
        &env,
        &["backup-dir", "from=data", &store()],
    ));
    assert!(t.elapsed() >= Duration::from_millis(300));
    let seen = proxy.seen();
    let faults: Vec<&str> = seen.iter().filter_map(|s| s.fault.as_deref()).collect();
    assert_eq!(
        faults,
        ["Reset", "Stall(300)", "Status(503, \"SlowDown\")"],
        "{seen:?}"
    );
    assert_eq!(manifests(&server, "dirs/data").len(), 1);
    assert!(lease(&server, "dirs/data").is_none());

    // A 503 answer carries S3's error document.
    let p2 = FaultProxy::start(server.port, 9);
    p2.add(Rule::new(Fault::Status(503, "SlowDown")));
    let r = common::http::request("GET", &format!("{}/{BUCKET}", p2.endpoint), &[], None);
    assert_eq!(r.status, 503);
    assert!(r.body.contains("<Code>SlowDown</Code>"), "{}", r.body);

    // Chance: the same seed and requests give the same faults.
    let pattern = |seed: u64| {
        let p = FaultProxy::start(server.port, seed);
        p.add(Rule::new(Fault::Status(500, "InternalError")).chance(0.5));
        (0..40)
            .map(|_| {
                common::http::request("GET", &format!("{}/{BUCKET}", p.endpoint), &[], None).status
            })
            .collect::<Vec<u16>>()
    };
    let (a, b) = (pattern(42), pattern(42));
    assert_eq!(a, b);
    let failed = a.iter().filter(|s| **s == 500).count();
    assert!((8..=32).contains(&failed), "about half: {failed} of 40");
}
