//! The daemon started the way rewind-daemon.service starts it, and the system calls it makes.

use super::*;

const TOKEN: &str = "packaging-test-token";

/// Every `Key=value` of a unit file, in order (comments and section headers left out).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
        .collect()
}

/// An EnvironmentFile's `KEY=VALUE` lines (systemd strips the quotes).
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// A Lua job that runs the client programs the bundled procedures call.
const TOOLS_JOB: &str = r#"local exec = require("rewind.exec")
return {
  schedule = "manual",
  run = function()
    local out = {}
    for _, prog in ipairs({ "git", "pg_dump", "mariadb-dump" }) do
      out[prog] = exec.run({ prog, "--version" }).stdout
    end
    return out
  end,
}
"#;

fn api(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = body.map(|b| serde_json::to_vec(&b).unwrap());
    let r = common::http::request(method, url, &headers, body);
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::String(r.body)),
    )
}

/// Runs a job through the API and waits for its record to end; the record.
fn run_job(base: &str, job: &str, args: &[String], log: &Path) -> Value {
    let (s, v) = api(
        "POST",
        &format!("{base}/api/jobs/{job}/run"),
        Some(serde_json::json!({ "args": args })),
    );
    assert_eq!(s, 202, "{v}");
    let id = v["run_id"].as_str().unwrap().to_string();
    let mut record = Value::Null;
    wait_for(
        &format!("run {id} of {job}"),
        Duration::from_secs(60),
        || {
            record = api("GET", &format!("{base}/api/runs/{id}"), None).1;
            !matches!(record["status"].as_str(), Some("running") | None)
        },
    );
    let daemon_log = std::fs::read_to_string(log).unwrap_or_default();
    assert_eq!(record["status"], "done", "{record}\n{daemon_log}");
    record
}

/// Starts `rewind daemon` from the unit's ExecStart with its environment file, as its user under
/// `setpriv --no-new-privs` (NoNewPrivileges=) and strace, with the jobs and state in a temporary
/// directory; checks the API and two runs; stops it with SIGTERM. The system calls it and its
/// children made.
pub fn run_as_the_unit_does(uid: u32, gid: u32) -> BTreeSet<String> {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    assert_eq!(unit_values(&unit, "User"), ["rewind"]);
    assert_eq!(unit_values(&unit, "StateDirectory"), ["rewind"]);
    assert_eq!(
        unit_values(&unit, "EnvironmentFile"),
        [format!("-{ENV_FILE}")]
    );
    let exec_start = unit_values(&unit, "ExecStart");
    assert_eq!(exec_start.len(), 1, "{unit}");
    let env_text = std::fs::read_to_string(ENV_FILE).unwrap();
    let mut env = env_file(&env_text);
    // The default local store is writable under ProtectSystem=strict.
    let writable = unit_values(&unit, "ReadWritePaths").join(" ");
    let default_store = env["REWIND_STORE"].clone();
    assert!(
        writable
            .split_whitespace()
            .any(|p| p.trim_start_matches('-') == default_store),
        "REWIND_STORE={default_store} is not in ReadWritePaths={writable}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (jobs, state, store, data) = (
        dir.path().join("jobs"),
        dir.path().join("state"),
        dir.path().join("store"),
        dir.path().join("data"),
    );
    for d in [&jobs, &state, &store, &data] {
        std::fs::create_dir(d).unwrap();
    }
    for d in [dir.path(), &state, &store] {
        std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
    }
    std::fs::write(data.join("a.txt"), "packaged\n").unwrap();
    // The shipped example, enabled as its comment says, and the client programs.
    std::fs::copy(EXAMPLE_JOB, jobs.join("data-nightly.yaml")).unwrap();
    std::fs::write(jobs.join("tools.lua"), TOOLS_JOB).unwrap();

    // The listener as the file's commented line offers it (on a free port), with a token.
    let port = free_port();
    let listen = env_text
        .lines()
        .find_map(|l| l.strip_prefix("#REWIND_DAEMON_OPTS="))
        .expect("a commented REWIND_DAEMON_OPTS line with --listen")
        .trim_matches('"')
        .replace("127.0.0.1:9180", &format!("127.0.0.1:{port}"));
    env.insert("REWIND_DAEMON_OPTS".into(), listen);
    env.insert("REWIND_DAEMON_TOKEN".into(), TOKEN.into());
    env.insert("REWIND_STORE".into(), store.to_str().unwrap().into());

    let mut argv = Vec::new();
    for w in exec_start[0].split_whitespace() {
        match w.strip_prefix('$') {
            Some(var) => argv.extend(env[var].split_whitespace().map(String::from)),
            None => argv.push(w.to_string()),
        }
    }
    for (flag, unit_value, ours) in [
        ("--jobs", "/etc/rewind/jobs", &jobs),
        ("--state", "/var/lib/rewind", &state),
    ] {
        let i = argv.iter().position(|a| a == flag).expect(flag);
        assert_eq!(argv[i + 1], unit_value, "{argv:?}");
        argv[i + 1] = ours.to_str().unwrap().into();
    }

    let trace = dir.path().join("syscalls");
    let log = dir.path().join("daemon.log");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-c", "-o"])
        .arg(&trace)
        .args(["-u", "rewind", "setpriv", "--no-new-privs", "--"])
        .args(&argv)
        .current_dir("/")
        .env_clear()
        .envs(&env)
        // What systemd gives a service with User=.
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        // HOME is the user's, /var/lib/rewind: the state directory (here the temporary one).
        .env("HOME", &state)
        .env("USER", "rewind")
        .env("LOGNAME", "rewind")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut strace = Stopped(cmd.spawn().expect("strace (tests/run.sh installs it)"));

    let base = format!("http://127.0.0.1:{port}");
    wait_for("the daemon's listener", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let health = common::http::request("GET", &format!("{base}/healthz"), &[], None);
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
    let (s, v) = api("GET", &format!("{base}/api/jobs"), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["load_errors"], serde_json::json!([]), "{v}");
    let names: BTreeSet<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["data-nightly", "tools"]));

    run_job(
        &base,
        "data-nightly",
        &[format!("from={}", data.display())],
        &log,
    );
    let stored: Vec<PathBuf> = common::process::files(&store.join("dirs/data"));
    assert!(
        !stored.is_empty(),
        "nothing stored under {}",
        store.display()
    );
    let owner = std::fs::metadata(&stored[0]).unwrap().uid();
    assert_eq!(
        owner, uid,
        "a backup written by the daemon belongs to rewind"
    );
    let tools = run_job(&base, "tools", &[], &log);
    assert!(
        tools["result"]["git"]
            .as_str()
            .unwrap_or("")
            .starts_with("git version"),
        "{tools}"
    );

    // The control socket, as an admin uses it.
    let out = must(
        Command::new("/usr/bin/rewind")
            .args(["jobs", "--state"])
            .arg(&state),
        "rewind jobs",
    );
    assert!(stdout(&out).contains("data-nightly"), "{}", text(&out));

    let status = strace.stop(&log);
    assert!(
        status.success(),
        "the daemon's exit: {status}\n{}",
        strace.log(&log)
    );
    let summary = std::fs::read_to_string(&trace).unwrap();
    syscall_names(&summary)
}

/// strace under test: the daemon (its child) is sent SIGTERM, as systemd stops the unit.
struct Stopped(Child);

impl Stopped {
    fn daemon_pid(&self) -> Option<i32> {
        let parent = self.0.id().to_string();
        std::fs::read_dir("/proc").ok()?.find_map(|e| {
            let stat = std::fs::read_to_string(e.ok()?.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let ppid = rest.split_whitespace().nth(1)?;
            (ppid == parent).then(|| stat.split_whitespace().next()?.parse().ok())?
        })
    }

    fn stop(&mut self, log: &Path) -> std::process::ExitStatus {
        let pid = self
            .daemon_pid()
            .unwrap_or_else(|| panic!("no daemon under strace\n{}", self.log(log)));
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the daemon did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self, log: &Path) -> String {
        std::fs::read_to_string(log).unwrap_or_default()
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            if let Some(pid) = self.daemon_pid() {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The names in `strace -c`'s table (its last column).
fn syscall_names(summary: &str) -> BTreeSet<String> {
    let names: BTreeSet<String> = summary
        .lines()
        .filter(|l| !l.starts_with('%') && !l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .filter(|n| *n != "total")
        .map(String::from)
        .collect();
    assert!(
        names.contains("execve") && names.contains("accept4"),
        "{summary}"
    );
    names
}

/// A SystemCallFilter= set with its nested sets expanded, from `systemd-analyze syscall-filter`.
pub fn allowed_syscalls(set: &str) -> BTreeSet<String> {
    let out = must(
        Command::new("systemd-analyze").arg("syscall-filter"),
        "systemd-analyze syscall-filter",
    );
    let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in stdout(&out).lines() {
        if line.starts_with('@') {
            current = line.trim().to_string();
        } else if let Some(item) = line.strip_prefix("    ")
            && !item.starts_with('#')
            && !current.is_empty()
        {
            sets.entry(current.clone())
                .or_default()
                .push(item.trim().to_string());
        }
    }
    let mut allowed = BTreeSet::new();
    let mut todo = vec![set.to_string()];
    while let Some(s) = todo.pop() {
        for item in sets
            .get(&s)
            .unwrap_or_else(|| panic!("no set {s} in systemd-analyze's"))
        {
            if item.starts_with('@') {
                todo.push(item.clone());
            } else {
                allowed.insert(item.clone());
            }
        }
    }
    assert!(allowed.contains("openat"), "{allowed:?}");
    allowed
}
