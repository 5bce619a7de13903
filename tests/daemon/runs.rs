//! Runs: no overlap, SIGTERM cancellation, history across restarts, missed runs, a real backup job.

use super::*;
#[test]
fn long_run_is_not_overlapped_and_sigterm_cancels() {
    let (dir, jobs, state) = setup();
    let marker = dir.path().join("on_exit_ran");
    write(
        &jobs.join("slow.lua"),
        &format!(
            "local task = require('rewind.task')\nlocal log = require('rewind.log')\nreturn {{\n  schedule = 'every 1s',\n  run = function()\n    task.on_exit(function() local f = io.open({marker:?}, 'a'); f:write('released\\n'); f:close() end)\n    task.spawn(function() log.info('from a spawned task') end)\n    log.info('sleeping')\n    task.sleep(60)\n  end,\n}}\n"
        ),
    );
    let mut d = Daemon::start(&jobs, &state, &["--grace", "1s"], &[]);
    wait_for("a skipped run", Duration::from_secs(10), || {
        !runs_of(&state, "slow", "skipped").is_empty()
    });
    let skipped = runs_of(&state, "slow", "skipped");
    assert!(
        skipped[0]["error"]
            .as_str()
            .unwrap()
            .contains("still going"),
        "{skipped:?}"
    );
    assert_eq!(runs_of(&state, "slow", "running").len(), 1);
    assert!(d.stderr().contains("is still going; this run is skipped"));

    let status = d.stop();
    assert!(status.success(), "{status:?}");
    let cancelled = runs_of(&state, "slow", "cancelled");
    assert_eq!(cancelled.len(), 1, "{:?}", runs(&state));
    assert!(runs_of(&state, "slow", "running").is_empty());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "released\n");
    // The run's log lines are kept by run id.
    let id = cancelled[0]["id"].as_str().unwrap();
    let log = text(&rewind(&[
        "jobs",
        "log",
        id,
        "--state",
        state.to_str().unwrap(),
    ]));
    assert!(log.contains("sleeping"), "{log}");
    assert!(log.contains("from a spawned task"), "{log}");
    assert!(log.contains("cancelled"), "{log}");
}

#[test]
fn history_survives_a_restart_and_missed_runs_run_once() {
    let (_dir, jobs, state) = setup();
    write(
        &jobs.join("greet.yaml"),
        "script: hello\nschedule: every 1s\n",
    );
    write(
        &jobs.join("nightly.yaml"),
        "script: hello\nschedule: \"0 3 * * *\"\ntimezone: Europe/Paris\non_missed: run_once\nparams: {name: night}\n",
    );
    let mut d = Daemon::start(&jobs, &state, &[], &[]);
    wait_for("a run", Duration::from_secs(10), || {
        !runs_of(&state, "greet", "done").is_empty()
    });
    d.stop();
    let before: Vec<String> = runs(&state)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();

    // Pretend the nightly job last fired two days ago: it missed a run and must run once at start-up.
    let mut st = status(&state);
    for j in st["jobs"].as_array_mut().unwrap() {
        if j["name"] == "nightly" {
            j["last_fire"] =
                Value::String((chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339());
        }
    }
    std::fs::write(state.join("jobs.json"), serde_json::to_vec(&st).unwrap()).unwrap();

    let _d = Daemon::start(&jobs, &state, &[], &[]);
    let out = text(&rewind(&[
        "jobs",
        "runs",
        "--state",
        state.to_str().unwrap(),
        "--limit",
        "1000",
    ]));
    for id in &before {
        assert!(out.contains(id.as_str()), "{id} missing from {out}");
    }
    wait_for("the missed run", Duration::from_secs(10), || {
        runs_of(&state, "nightly", "done")
            .iter()
            .any(|r| r["trigger"] == "missed")
    });
    let out = text(&rewind(&["jobs", "--state", state.to_str().unwrap()]));
    assert!(out.contains("0 3 * * * Europe/Paris"), "{out}");
    // `rewind jobs run` goes through the daemon's socket, with params.
    let o = rewind(&[
        "jobs",
        "run",
        "greet",
        "name=zed",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for("the manual run", Duration::from_secs(10), || {
        runs_of(&state, "greet", "done")
            .iter()
            .any(|r| r["trigger"] == "manual" && greetings(r) == "hello, zed")
    });
    let o = rewind(&["jobs", "run", "nope", "--state", state.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no job named 'nope'"));
}

#[test]
fn backup_dir_job_snapshots_and_sigterm_releases_a_real_lock() {
    let (dir, jobs, state) = setup();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "alpha").unwrap();
    // A socket: tar skips it with a warning, logged from a blocking thread, which the run's log must keep.
    let _sock = std::os::unix::net::UnixListener::bind(data.join("app.sock")).unwrap();
    let store = dir.path().join("store");
    // A YAML job running the bundled backup-dir every second into a local store.
    write(
        &jobs.join("nightly.yaml"),
        &format!(
            "script: backup-dir\nschedule: every 1s\nparams:\n  from: {}\n  store: {}\n",
            data.display(),
            store.display()
        ),
    );
    // A Lua job that holds a real rewind.lock in the same store while it sleeps.
    write(
        &jobs.join("holder.lua"),
        &format!(
            "local store = require('rewind.store')\nlocal lock = require('rewind.lock')\nlocal task = require('rewind.task')\nreturn {{\n  schedule = 'every 1s',\n  run = function()\n    local l = lock.acquire(store.open({:?}), 'held', {{ ttl = '2m', prefix = 'jobs' }})\n    task.sleep(60)\n    l:release()\n  end,\n}}\n",
            store.display().to_string()
        ),
    );
    let mut d = Daemon::start(&jobs, &state, &["--grace", "1s"], &[]);
    let lock_file = store.join("jobs/locks/held.json");
    wait_for(
        "a backup-dir run and a held lock",
        Duration::from_secs(20),
        || !runs_of(&state, "nightly", "done").is_empty() && lock_file.exists(),
    );
    // The scheduled backup wrote a complete snapshot: a manifest beside its tar.zst.
    let done = &runs_of(&state, "nightly", "done")[0];
    let snap = done["result"]["snapshot"].as_str().unwrap().to_string();
    let day = &snap[..8];
    let manifests: Vec<_> = std::fs::read_dir(store.join("dirs/data").join(day))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("manifest_"))
        .collect();
    assert!(!manifests.is_empty(), "no manifest for {snap}");
    let log = std::fs::read_to_string(
        state
            .join("runs")
            .join(format!("{}.log", done["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(
        log.contains("app.sock: not a file, directory or symlink"),
        "the run log misses tar's warning: {log}"
    );

    let status = d.stop();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        runs_of(&state, "holder", "cancelled").len(),
        1,
        "{:?}",
        runs(&state)
    );
    assert!(
        !lock_file.exists(),
        "SIGTERM left the lock {} behind",
        lock_file.display()
    );
}

#[test]
fn a_quiet_daemon_still_keeps_each_runs_log() {
    let (_dir, jobs, state) = setup();
    write(
        &jobs.join("talk.lua"),
        "local log = require('rewind.log')\nreturn { schedule = 'every 1s', run = function() log.info('a line for the run log') end }\n",
    );
    let mut d = Daemon::start(&jobs, &state, &["-q"], &[]);
    wait_for("a done run", Duration::from_secs(15), || {
        !runs_of(&state, "talk", "done").is_empty()
    });
    d.stop();
    let done = runs_of(&state, "talk", "done");
    let id = done[0]["id"].as_str().unwrap();
    let log =
        std::fs::read_to_string(state.join("runs").join(format!("{id}.log"))).unwrap_or_default();
    assert!(
        log.contains("a line for the run log"),
        "the run log keeps info lines under -q: {log:?}"
    );
    assert!(
        !d.stderr().contains("a line for the run log"),
        "-q keeps the console quiet"
    );
}
