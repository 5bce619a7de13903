//! Helpers for the lease tests (tests/locks.rs on the local store, tests/lease_s3.rs on moto): rewind
//! commands with a given environment, a process that holds a prefix's lease with the real `rewind.lock`,
//! two procedures started together, and incompressible test data.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::process::{rewind, text};

/// `rewind` in `cwd` with `env` set.
pub fn rewind_with(cwd: &Path, env: &[(&str, String)]) -> Command {
    let mut c = rewind();
    c.current_dir(cwd);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// `rewind run --json ARGS...`: the finished process.
pub fn run(cwd: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    rewind_with(cwd, env)
        .arg("run")
        .arg("--json")
        .args(args)
        .output()
        .unwrap()
}

/// Writes `n` pseudo-random (incompressible) bytes to `path`.
pub fn random_file(path: &Path, n: usize, seed: u64) {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, out).unwrap();
}

const HOLDER: &str = r#"
return {
  description = "holds a prefix's lease (rewind.lock.target) for a while, then releases it",
  params = {
    store = { type = "string", doc = "store URL" },
    prefix = { type = "string", required = true, doc = "snapshot prefix" },
    ttl = { type = "duration", default = "1m", doc = "lease length" },
    secs = { type = "number", default = 60, doc = "how long to hold it" },
    owner = { type = "string", default = "backup-dir", doc = "recorded owner" },
    ready = { type = "string", required = true, doc = "file written once the lease is held" },
  },
  run = function(p)
    local time, task = require("rewind.time"), require("rewind.task")
    local s = require("rewind.store").open(p.store)
    local l = require("rewind.lock").target(s, p.prefix, { owner = p.owner, ttl = p.ttl })
    require("rewind.fs").write(p.ready, "held")
    local t0 = time.monotonic()
    while time.monotonic() - t0 < p.secs do task.sleep(0.1) end
    l:check()
    l:release()
    return { held = p.secs }
  end,
}
"#;

/// A process holding `prefix`'s lease (owner `owner`, lease `ttl`) for `secs` seconds; returns once
/// it holds it. Its stdout and stderr are piped (read them with `wait_with_output`).
pub fn spawn_holder(
    dir: &Path,
    env: &[(&str, String)],
    extra: &[&str],
    prefix: &str,
    ttl: &str,
    secs: u64,
) -> (Child, PathBuf) {
    let script = dir.join("holder.lua");
    std::fs::write(&script, HOLDER).unwrap();
    let ready = dir.join(format!("held-{}", super::process::unique()));
    let mut child = rewind_with(dir, env)
        .arg("run")
        .arg("--json")
        .arg(&script)
        .arg(format!("prefix={prefix}"))
        .arg(format!("ttl={ttl}"))
        .arg(format!("secs={secs}"))
        .arg(format!("ready={}", ready.display()))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !ready.exists() {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!("the lease holder ended early: {}", text(&out));
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "holder never took the lease"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, ready)
}

/// Two rewind processes started together with the same args: (output, pid) of each. Each is a shell
/// that waits on its stdin and then execs rewind (keeping its pid): both are released at the same moment,
/// so they race for the lease rather than run one after the other.
pub fn start_two(cwd: &Path, env: &[(&str, String)], args: &[String]) -> [(Output, u32); 2] {
    let spawn = || {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("read go; exec \"$0\" \"$@\"")
            .arg(super::process::BIN)
            .args(["-v", "run", "--json"])
            .args(args)
            .current_dir(cwd)
            .env_remove("REWIND_PATH")
            .env_remove("REWIND_LOG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().unwrap()
    };
    let mut a = spawn();
    let mut b = spawn();
    std::thread::sleep(Duration::from_millis(30));
    for c in [&mut a, &mut b] {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    let (pa, pb) = (a.id(), b.id());
    [
        (a.wait_with_output().unwrap(), pa),
        (b.wait_with_output().unwrap(), pb),
    ]
}

/// What one contention trial showed.
pub enum Trial {
    /// Exactly one ran (this pid); the other failed naming it.
    Won(u32),
    /// Both ran, one taking the lease after the other had released it (their -v logs say when): the two
    /// never raced (one process started late on a loaded machine), so the trial says nothing.
    Sequential,
    Failed(String),
}

/// When a run (started with -v) logged `what` ("acquired the lease", "released the lease"): the
/// timestamp that starts its log line.
fn logged_at(out: &Output, what: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.contains(what))?;
    chrono::DateTime::parse_from_rfc3339(line.split_whitespace().next()?).ok()
}

/// Judges one trial of two runs started with `start_two` (which logs at -v): exactly one of the two
/// succeeded and the other failed (exit 1) naming the winner as the holder of `prefix`.
pub fn judge(runs: &[(Output, u32); 2], prefix: &str) -> Trial {
    let ok: Vec<&(Output, u32)> = runs.iter().filter(|(o, _)| o.status.success()).collect();
    if ok.len() == 2 {
        // Both ran: fine only when one took the lease after the other had released it.
        let at = |o: &Output, what| logged_at(o, what);
        let (a, b) = (&runs[0].0, &runs[1].0);
        if let (Some(a_in), Some(a_out), Some(b_in), Some(b_out)) = (
            at(a, "acquired the lease"),
            at(a, "released the lease"),
            at(b, "acquired the lease"),
            at(b, "released the lease"),
        ) && (b_in >= a_out || a_in >= b_out)
        {
            return Trial::Sequential;
        }
    }
    if ok.len() != 1 {
        return Trial::Failed(format!(
            "{} of 2 succeeded:\n{}\n---\n{}",
            ok.len(),
            text(&runs[0].0),
            text(&runs[1].0)
        ));
    }
    let winner = ok[0].1;
    let loser = runs.iter().find(|(_, p)| *p != winner).unwrap();
    let err = String::from_utf8_lossy(&loser.0.stderr);
    let expect = format!(
        "{prefix} is locked by backup-dir on {} (pid {winner}) since ",
        host()
    );
    if loser.0.status.code() != Some(1) || !err.contains(&expect) {
        return Trial::Failed(format!(
            "the loser did not fail naming the holder ({expect}): {}",
            text(&loser.0)
        ));
    }
    Trial::Won(winner)
}

/// Runs trials until `want` of them raced (at most `2 * want` attempts). Returns the failures and how
/// many trials were sequential (not counted), and prints the figures.
pub fn contend(label: &str, want: usize, mut attempt: impl FnMut(usize) -> Trial) -> Vec<String> {
    let t0 = Instant::now();
    let (mut raced, mut sequential, mut failures) = (0, 0, Vec::new());
    let mut i = 0;
    while raced < want && i < 2 * want {
        match attempt(i) {
            Trial::Won(_) => raced += 1,
            Trial::Sequential => sequential += 1,
            Trial::Failed(e) => {
                raced += 1;
                failures.push(format!("trial {i}: {e}"));
            }
        }
        i += 1;
    }
    eprintln!(
        "contention ({label}): {}/{raced} raced trials with exactly one winner ({sequential} more did not race: \
         one process started after the other had finished), {:.1}s",
        raced - failures.len(),
        t0.elapsed().as_secs_f64()
    );
    if raced < want {
        failures.push(format!("only {raced} of {} trials raced", 2 * want));
    }
    failures
}

/// The local store's lease of `prefix`, parsed, or None.
pub fn local_lease(store: &Path, prefix: &str) -> Option<serde_json::Value> {
    let p = store.join(prefix).join("locks/target.json");
    let text = std::fs::read_to_string(p).ok()?;
    Some(serde_json::from_str(&text).expect("the lease is JSON"))
}

/// Seconds since the epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// This machine's host name, as leases record it.
pub fn host() -> String {
    hostname::get().unwrap().to_string_lossy().into_owned()
}
