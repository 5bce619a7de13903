//! The manifests in deploy/kubernetes/: every document validates against the Kubernetes schema
//! (`kubernetes-validate --strict` from PyPI, installed by tests/run.sh), every `rewind run` a container
//! starts is a valid command with params its script declares (`rewind check`), and the daemon's jobs
//! ConfigMap loads in a real daemon started with the Deployment's own flags.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use common::daemon::{Daemon, status};
use common::process::{repo, rewind, text, wait_for};

fn manifests() -> Vec<(PathBuf, Vec<Value>)> {
    let dir = repo().join("deploy/kubernetes");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let docs = serde_norway::Deserializer::from_str(&text)
                .map(|d| {
                    serde_json::to_value(serde_norway::Value::deserialize(d).unwrap()).unwrap()
                })
                .filter(|v| !v.is_null())
                .collect();
            out.push((path, docs));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 4, "the manifests are missing: {out:?}");
    out
}

fn validator() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let p = PathBuf::from(home).join(".cache/rewind-tests/moto/bin/kubernetes-validate");
    assert!(
        p.exists(),
        "{} not found: run tests/run.sh (it installs kubernetes-validate)",
        p.display()
    );
    p
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schema() {
    let files = manifests();
    let docs: usize = files.iter().map(|(_, d)| d.len()).sum();
    let out = Command::new(validator())
        .arg("--strict")
        .args(files.iter().map(|(p, _)| p))
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    // One "passed" line per document: a run that validated nothing is a failure.
    assert_eq!(all.matches(" passed for resource ").count(), docs, "{all}");
}

/// The pod spec of a workload (Deployment, CronJob, Job).
fn pod_spec(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str() {
        Some("CronJob") => Some(&doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        Some("Deployment") | Some("Job") => Some(&doc["spec"]["template"]["spec"]),
        _ => None,
    }
}

/// The containers of every workload in a document.
fn containers(doc: &Value) -> Vec<Value> {
    pod_spec(doc)
        .and_then(|spec| spec["containers"].as_array().cloned())
        .unwrap_or_default()
}

/// The image the Dockerfile builds cannot be built here, but the manifests are held to it: one image
/// name everywhere, `args` and never `command` (the image's ENTRYPOINT is `rewind`), and the
/// Dockerfile's USER as every pod's user and group.
#[test]
fn every_container_runs_the_image_the_dockerfile_builds() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("ENTRYPOINT [\"rewind\"]"));
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the Dockerfile's USER line");
    let (uid, gid) = user.trim().split_once(':').expect("USER uid:gid");
    let mut images = std::collections::BTreeSet::new();
    for (path, docs) in manifests() {
        for doc in &docs {
            let Some(pod) = pod_spec(doc) else { continue };
            let sc = &pod["securityContext"];
            assert_eq!(
                (sc["runAsUser"].to_string(), sc["runAsGroup"].to_string()),
                (uid.to_string(), gid.to_string()),
                "{}: the pod's user is not the image's",
                path.display()
            );
            for c in containers(doc) {
                assert!(
                    c.get("command").is_none(),
                    "{}: command replaces the entrypoint",
                    path.display()
                );
                images.insert(c["image"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(
        images.len(),
        1,
        "the manifests name several images: {images:?}"
    );
}

fn args(c: &Value) -> Vec<String> {
    c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_rewind_run_in_the_manifests_is_a_valid_command() {
    let mut checked = 0;
    for (path, docs) in manifests() {
        for doc in &docs {
            for c in containers(doc) {
                let a = args(&c);
                if a.first().map(String::as_str) != Some("run") {
                    continue;
                }
                // rewind run [--flags] SCRIPT k=v...: `rewind check SCRIPT k=v...` runs nothing.
                let rest: Vec<&String> = a[1..].iter().filter(|x| !x.starts_with("--")).collect();
                let out = rewind().arg("check").args(&rest).output().unwrap();
                assert!(
                    out.status.success(),
                    "{}: {rest:?}: {}",
                    path.display(),
                    text(&out)
                );
                checked += 1;
            }
        }
    }
    // cronjob-backup-dir, event-backup, indexed-replay and indexed-backup at least.
    assert!(
        checked >= 4,
        "only {checked} `rewind run` containers were checked"
    );
}

/// Every Indexed Job tells its pods how many copies share the work (JOB_COMPLETION_COUNT = completions:
/// Kubernetes only sets the index), retries per index, and defines every `$(VAR)` its args use (an
/// undefined one is passed on literally: a `batch=$(JOB_NAME)` would then be the same for every run).
#[test]
fn every_indexed_job_tells_its_pods_the_count_and_defines_its_variables() {
    let mut indexed = Vec::new();
    for (path, docs) in manifests() {
        for doc in docs
            .iter()
            .filter(|d| d["kind"] == "Job" && d["spec"]["completionMode"] == "Indexed")
        {
            let spec = &doc["spec"];
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            assert!(spec["backoffLimitPerIndex"].is_u64(), "{name}: {spec}");
            for c in containers(doc) {
                let env = c["env"].as_array().cloned().unwrap_or_default();
                let var = |n: &str| env.iter().find(|e| e["name"] == n).cloned();
                let count = var("JOB_COMPLETION_COUNT")
                    .unwrap_or_else(|| panic!("{name}: no JOB_COMPLETION_COUNT"));
                assert_eq!(
                    count["value"].as_str().and_then(|v| v.parse::<u64>().ok()),
                    spec["completions"].as_u64(),
                    "{name}: JOB_COMPLETION_COUNT must equal completions"
                );
                for a in args(&c) {
                    for used in a.split("$(").skip(1).filter_map(|r| r.split(')').next()) {
                        assert!(
                            var(used).is_some(),
                            "{name}: {a} uses $({used}), which env does not define"
                        );
                    }
                }
            }
            indexed.push(name);
        }
    }
    assert!(
        indexed.contains(&"indexed-backup.yaml".to_string())
            && indexed.contains(&"indexed-replay.yaml".to_string()),
        "{indexed:?}"
    );
}

/// The jobs ConfigMap's files in a directory, and the args of the Deployment named `deployment`.
fn jobs_and_args(deployment: &str, dir: &std::path::Path) -> (PathBuf, usize, Vec<String>) {
    let files = manifests();
    let docs: Vec<&Value> = files.iter().flat_map(|(_, d)| d).collect();
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "rewind-jobs")
        .expect("the jobs ConfigMap");
    let deploy = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == deployment)
        .unwrap_or_else(|| panic!("no Deployment {deployment}"));
    let jobs = dir.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let data = cm["data"].as_object().unwrap();
    for (name, body) in data {
        std::fs::write(jobs.join(name), body.as_str().unwrap()).unwrap();
    }
    let a = args(&containers(deploy)[0]);
    assert_eq!(a[0], "daemon");
    (jobs, data.len(), a[1..].to_vec())
}

/// A Deployment's flags with this machine's paths and address: flags starting with a prefix in
/// `replace` are dropped, and `extra` added.
fn local_flags(a: &[String], replace: &[&str], extra: Vec<String>) -> Vec<String> {
    let port = common::process::free_port();
    a.iter()
        .filter(|f| {
            !["--jobs=", "--state=", "--listen=", "--allow="]
                .iter()
                .chain(replace)
                .any(|p| f.starts_with(p))
        })
        .cloned()
        .chain([format!("--listen=127.0.0.1:{port}")])
        .chain(extra)
        .collect()
}

/// Waits until the daemon with `state` has loaded `n` jobs, and checks that none failed.
fn assert_jobs_loaded(state: &std::path::Path, n: usize, d: &Daemon) {
    wait_for("the jobs to load", Duration::from_secs(20), || {
        let st = status(state);
        st["jobs"].as_array().map_or(0, |j| j.len())
            + st["load_errors"].as_array().map_or(0, |e| e.len())
            >= n
    });
    let st = status(state);
    assert_eq!(
        st["load_errors"].as_array().map_or(0, |e| e.len()),
        0,
        "{st}\n{}",
        d.stderr()
    );
    let jobs = st["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), n, "{st}");
    assert!(jobs.iter().all(|j| j["error"].is_null()), "{st}");
}

#[test]
fn the_daemon_deployment_loads_its_jobs_configmap() {
    let dir = tempfile::tempdir().unwrap();
    let (jobs, n, a) = jobs_and_args("rewind-daemon", dir.path());
    let flags = local_flags(&a, &[], Vec::new());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let state = dir.path().join("state");
    let mut d = Daemon::start(
        &jobs,
        &state,
        &flags,
        &[("REWIND_DAEMON_TOKEN", "k8s-test-token")],
    );
    assert_jobs_loaded(&state, n, &d);
    d.stop();
}

/// The highly available Deployment: two pods' worth of daemons, started with its flags against moto (the
/// cluster folder and the pod names replaced), load the jobs and see each other as members.
#[test]
fn the_cluster_deployment_runs_members_that_see_each_other() {
    let s3 = common::s3::S3Server::start();
    s3.create_bucket("k8s");
    let dir = tempfile::tempdir().unwrap();
    let (jobs, n, a) = jobs_and_args("rewind-daemon-cluster", dir.path());
    assert!(a.iter().any(|f| f.starts_with("--cluster=s3://")), "{a:?}");
    assert!(a.contains(&"--member=$(POD_NAME)".to_string()), "{a:?}");
    let env: Vec<(&str, String)> = s3.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("REWIND_DAEMON_TOKEN", "k8s-test-token"));
    let mut daemons = Vec::new();
    for pod in ["rewind-daemon-cluster-0", "rewind-daemon-cluster-1"] {
        let extra = vec![
            "--cluster=s3://k8s/rewind-cluster".to_string(),
            format!("--member={pod}"),
            "--member-every=1s".to_string(),
        ];
        let flags = local_flags(&a, &["--cluster=", "--member=", "--member-every="], extra);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let state = dir.path().join(pod);
        let d = Daemon::start(&jobs, &state, &flags, &env);
        assert_jobs_loaded(&state, n, &d);
        daemons.push((d, state));
    }
    for (d, state) in &daemons {
        wait_for("both members", Duration::from_secs(15), || {
            status(state)["cluster"]["members"]
                .as_array()
                .is_some_and(|m| m.iter().filter(|m| m["live"] == true).count() == 2)
        });
        assert!(d.stderr().contains("cluster member"), "{}", d.stderr());
    }
    for (d, _) in &mut daemons {
        assert!(d.stop().success());
    }
    // A clean stop removes the member's announcement.
    assert_eq!(
        s3.list_keys("k8s", "rewind-cluster/members/"),
        Vec::<String>::new()
    );
}
