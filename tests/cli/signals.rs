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
        let child = cmd(d.path(), &["run", script.to_str().unwrap()])
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
    let child = cmd(d.path(), &["run", script.to_str().unwrap()])
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
