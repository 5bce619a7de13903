//! Starting the real binaries and the test servers: the rewind command, output text for assertion
//! messages, free ports, waiting for a condition, and helpers that announce themselves on stdout.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rewind");

/// The real `rewind` binary with none of the caller's settings that change what it finds or prints.
pub fn rewind() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("REWIND_PATH")
        .env_remove("REWIND_LOG")
        .env_remove("RUST_LOG")
        .env_remove("REWIND_LOG_FORMAT")
        .env_remove("REWIND_VERBOSE")
        .env_remove("REWIND_QUIET")
        .env_remove("REWIND_JSON")
        // No config file of the machine's user: a test that wants one names it.
        .env("REWIND_CONFIG", "")
        .env("NO_COLOR", "1");
    c
}

/// A process's exit code, stdout and stderr, for assertion messages and `contains` checks.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics with the output unless the command succeeded.
pub fn must_succeed(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed: {}", text(&out));
    out
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A number no other call in this test process returns (for file names).
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) + std::process::id() as u64 * 1_000_000
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until something listens on 127.0.0.1:`port`.
pub fn wait_for_port(what: &str, port: u16) {
    wait_for(what, Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// Starts a helper that prints one line when it is ready (its port, or its address): returns the
/// child and that line, trimmed.
pub fn spawn_announcing(cmd: &mut Command, what: &str) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("reading the first line of {what}: {e}"));
    assert!(!line.trim().is_empty(), "{what} printed nothing");
    (child, line.trim().to_string())
}

/// Every file under `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    v.sort();
    v
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fake service under tests/fakes/, started with python3.
pub fn python_fake(name: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(repo().join("tests/fakes").join(name));
    c
}

/// A child process killed and reaped on drop.
pub struct Killed(pub Child);

impl Killed {
    /// Sends `signal` and waits for the process to end; its output (when piped).
    pub fn signal_and_wait(mut self, signal: i32) -> Output {
        unsafe { libc::kill(self.0.id() as i32, signal) };
        let mut out = Output {
            status: self.0.wait().unwrap(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        use std::io::Read;
        if let Some(mut s) = self.0.stdout.take() {
            let _ = s.read_to_end(&mut out.stdout);
        }
        if let Some(mut s) = self.0.stderr.take() {
            let _ = s.read_to_end(&mut out.stderr);
        }
        out
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The seed of a randomized test: `REWIND_TEST_SEED` when set (to replay a run), else from the clock.
/// Printed, so a failure can be replayed.
pub fn test_seed(what: &str) -> u64 {
    let seed = std::env::var("REWIND_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{what}: REWIND_TEST_SEED={seed}");
    seed
}

/// How many kills (or trials) a randomized test makes: `REWIND_TEST_KILLS`, else `default`.
pub fn test_kills(default: usize) -> usize {
    std::env::var("REWIND_TEST_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(default)
}
