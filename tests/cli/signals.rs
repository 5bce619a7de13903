//! Signals: SIGTERM runs the exit handlers; a second signal interrupts a hanging cleanup.

use super::*;
#[test]
fn sigterm_runs_on_exit_handlers_and_exits_1() {
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("cleaned");
    let started = d.path().join("started");
    let script = write(
        d.path(),
        "long.lua",
        &format!(
            r#"local task = require("rewind.task")
local fs = require("rewind.fs")
return {{ description = "runs until stopped", params = {{}}, run = function()
  task.on_exit(function() fs.write({marker:?}, "cleanup ran") end)
  fs.write({started:?}, "yes")
  task.sleep(60)
end }}
"#
        ),
    );
    for signal in ["TERM", "INT"] {
        let _ = std::fs::remove_file(&marker);
        let _ = std::fs::remove_file(&started);
        let t0 = Instant::now();
        let child = start_and_wait(d.path(), &script, &started);
        let signum = if signal == "TERM" {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        // SAFETY: sending a signal to the child this test started.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signum) }, 0);
        let r = from_output(child.wait_with_output().unwrap());
        assert_eq!(r.code, 1, "SIG{signal}: {r:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "SIG{signal} did not stop the run"
        );
        assert_eq!(
            std::fs::read_to_string(&marker).unwrap_or_default(),
            "cleanup ran",
            "SIG{signal}: on_exit did not run: {r:?}"
        );
        assert!(r.stderr.contains("cancelled"), "{r:?}");
    }
}

#[test]
fn a_second_signal_interrupts_hanging_cleanup() {
    let d = tempfile::tempdir().unwrap();
    let started = d.path().join("started");
    let script = write(
        d.path(),
        "hang.lua",
        &format!(
            r#"local task = require("rewind.task")
local fs = require("rewind.fs")
return {{ description = "cleanup that hangs", params = {{}}, run = function()
  task.on_exit(function() task.sleep(60) end)
  fs.write({started:?}, "yes")
  task.sleep(60)
end }}
"#
        ),
    );
    let child = start_and_wait(d.path(), &script, &started);
    let t0 = Instant::now();
    let pid = child.id() as libc::pid_t;
    // SAFETY: signalling the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let r = from_output(child.wait_with_output().unwrap());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{r:?}");
    assert!(r.stderr.contains("second signal"), "{r:?}");
}

/// Starts `script` and waits until it wrote `started`.
fn start_and_wait(dir: &Path, script: &Path, started: &Path) -> std::process::Child {
    let child = cmd(dir, &["run", script.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !started.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the script never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn graceful_stop_exits_0_when_the_exit_handlers_finish_the_work() {
    let d = tempfile::tempdir().unwrap();
    for (handler, code) in [
        ("fs.write(out, 'flushed')", 0),
        ("error('flush failed')", 1),
    ] {
        let out = d.path().join(format!("out{code}"));
        let started = d.path().join(format!("started{code}"));
        let script = write(
            d.path(),
            &format!("long{code}.lua"),
            &format!(
                r#"local task = require("rewind.task")
local fs = require("rewind.fs")
local out = {out:?}
return {{ description = "ends on a signal", graceful_stop = true, params = {{}}, run = function()
  task.on_exit(function() {handler} end)
  fs.write({started:?}, "yes")
  task.sleep(60)
end }}
"#
            ),
        );
        let child = start_and_wait(d.path(), &script, &started);
        // SAFETY: sending a signal to the child this test started.
        assert_eq!(
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
        let r = from_output(child.wait_with_output().unwrap());
        assert_eq!(r.code, code, "{r:?}");
        if code == 0 {
            assert_eq!(std::fs::read_to_string(&out).unwrap(), "flushed");
        } else {
            assert!(r.stderr.contains("exit handlers failed"), "{r:?}");
        }
    }
}

#[test]
fn task_abort_stops_the_whole_run_and_names_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("cleaned");
    let late = d.path().join("late");
    let script = write(
        d.path(),
        "abort.lua",
        &format!(
            r#"local task = require("rewind.task")
local fs = require("rewind.fs")
return {{ description = "a watcher aborts the run", params = {{}}, run = function()
  -- The handler outlives the second worker's sleep: had that worker not been stopped, it would have
  -- written by the time the process exits.
  task.on_exit(function() task.sleep(2) fs.write({marker:?}, "cleanup ran") end)
  -- A second worker that would write after the abort: it must be stopped with the run.
  task.spawn(function() task.sleep(1.5) fs.write({late:?}, "too late") end)
  task.spawn(function() task.sleep(0.2) task.abort("lost the lease of dirs/x to backup-dir on h1 (pid 7)") end)
  task.sleep(60)
  return "never"
end }}
"#
        ),
    );
    let t0 = Instant::now();
    let r = rewind(d.path(), &["run", script.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{r:?}");
    assert!(
        r.stderr
            .contains("lost the lease of dirs/x to backup-dir on h1 (pid 7)"),
        "{r:?}"
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "cleanup ran");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !late.exists(),
        "a coroutine of the aborted run went on writing"
    );
}
