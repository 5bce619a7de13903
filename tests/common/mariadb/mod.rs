//! Throwaway MariaDB servers for tests: Debian's `mariadbd`, `mariadb-install-db` into a temp dir, a unix
//! socket in that dir and a TCP port on 127.0.0.1. The administrator (root, or the OS user when the tests
//! do not run as root) logs in over the socket with unix_socket auth and no password; the `rewind` user
//! has a password and every privilege. When the tests run as root the server runs as the `mysql` user,
//! which owns the temp dir.
//!
//! `fixture()` loads the three databases of the real source (hyphenated names), `fill_large()` a big
//! table for benchmarks, and `state()` reads back everything a backup must keep, in a form that compares
//! equal across a `mariadb-dump | mariadb` round trip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::process::{free_port, text};

mod state;
#[allow(unused_imports)]
pub use state::{DbState, assert_same_state};

pub const USER: &str = "rewind";
pub const PASSWORD: &str = "Maria-S3cret-9d2e";

/// The databases `fixture()` creates, sorted.
pub const FIXTURE_DATABASES: [&str; 3] = ["athena-server", "oauth2-server", "oauth2-users"];

/// The table `fill_large()` fills.
pub const LARGE_TABLE: &str = "large_events";

/// Schemas the server keeps for itself: not user data.
pub const SYSTEM_SCHEMAS: [&str; 4] = ["information_schema", "mysql", "performance_schema", "sys"];

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// The name of the effective OS user (the administrator account when not running as root).
fn os_user() -> String {
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        assert!(!pw.is_null(), "no passwd entry for the current user");
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// A server program: on PATH, else in /usr/sbin (not on a normal user's PATH on Debian).
fn server_program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if on_path {
        return PathBuf::from(name);
    }
    for dir in ["/usr/sbin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found (apt-get install mariadb-server mariadb-client)")
}

/// An identifier in backticks: `athena-server`.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal (the default sql_mode, where backslash escapes).
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The last `n` lines of a file, or a note that it could not be read.
fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

pub struct Maria {
    pub dir: tempfile::TempDir,
    pub port: u16,
    server: Option<Child>,
}

impl Maria {
    /// Initializes a data directory and starts a server on it; returns once it accepts connections and
    /// the `rewind` user exists. Panics with the server log when it does not come up within 30 s.
    pub fn start() -> Maria {
        let dir = tempfile::Builder::new()
            .prefix("rewind-maria-")
            .tempdir()
            .unwrap();
        let mut m = Maria {
            dir,
            port: free_port(),
            server: None,
        };
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "mysql:mysql"])
                .arg(m.dir.path())
                .status()
                .unwrap();
            assert!(st.success(), "chown mysql {}", m.dir.path().display());
        }
        let install = server_program("mariadb-install-db");
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "mysql", "--"]).arg(install);
            c
        } else {
            Command::new(install)
        };
        let out = c
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
            ])
            .arg(format!("--datadir={}", m.data().display()))
            // Its own temporary directory: concurrent bootstraps in a shared /tmp collide on the names
            // of their temporary tables ("Could not remove temporary table '/tmp/#sql-temptable-...'").
            .arg(format!("--tmpdir={}", m.dir.path().display()))
            .output()
            .unwrap();
        m.must_succeed(out, "mariadb-install-db");

        let console = std::fs::File::create(m.dir.path().join("mariadbd.out")).unwrap();
        let mut c = Command::new(server_program("mariadbd"));
        c.arg("--no-defaults")
            .arg(format!("--tmpdir={}", m.dir.path().display()));
        if is_root() {
            // mariadbd drops to this user itself, so the child we kill is the server.
            c.arg("--user=mysql");
        }
        let d = m.dir.path();
        c.arg(format!("--datadir={}", m.data().display()))
            .arg(format!("--socket={}", m.socket().display()))
            .arg(format!("--port={}", m.port))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", m.log().display()))
            .arg(format!("--tmpdir={}", d.display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=256M",
                "--innodb-log-file-size=256M",
                "--max-allowed-packet=1G",
                "--max-connections=50",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                "--event-scheduler=OFF",
                "--local-infile=1",
            ])
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console);
        m.server = Some(c.spawn().expect("starting mariadbd"));

        let t = Instant::now();
        loop {
            if let Some(st) = m.server.as_mut().unwrap().try_wait().unwrap() {
                m.server = None;
                panic!("mariadbd exited during startup ({st}):\n{}", m.log_tail());
            }
            let ping = m
                .root_client("mariadb-admin")
                .args(["--connect-timeout=2", "ping"])
                .output()
                .unwrap();
            if ping.status.success() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "mariadbd did not accept connections on {} within 30 s: {}\nserver log:\n{}",
                m.socket().display(),
                text(&ping),
                m.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        let (u, p) = (lit(USER), lit(PASSWORD));
        m.sql(
            None,
            &format!(
                "CREATE USER {u}@'%' IDENTIFIED BY {p};\n\
                 CREATE USER {u}@'localhost' IDENTIFIED BY {p};\n\
                 GRANT ALL PRIVILEGES ON *.* TO {u}@'%' WITH GRANT OPTION;\n\
                 GRANT ALL PRIVILEGES ON *.* TO {u}@'localhost' WITH GRANT OPTION;\n"
            ),
        );
        m
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's error log.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("mariadb.err")
    }

    /// The end of the server's error log and console output, for failure messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- {}\n{}\n--- mariadbd console\n{}",
            self.log().display(),
            tail(&self.log(), 40),
            tail(&self.dir.path().join("mariadbd.out"), 20)
        )
    }

    /// Panics with the output and the server log unless the command succeeded.
    pub fn must_succeed(&self, out: Output, what: &str) -> Output {
        assert!(
            out.status.success(),
            "{what} failed: {}\nserver log:\n{}",
            text(&out),
            self.log_tail()
        );
        out
    }

    /// Environment a client needs besides its arguments: the `rewind` user's password.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![("MYSQL_PWD".into(), PASSWORD.into())]
    }

    /// A client program (mariadb, mariadb-dump, mariadb-admin) logged in as the administrator over the
    /// socket, no password. Add further arguments after these.
    pub fn root_client(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        let user = if is_root() { "root".into() } else { os_user() };
        c.arg("--no-defaults")
            .arg(format!("--user={user}"))
            .arg(format!("--socket={}", self.socket().display()))
            .env_remove("MYSQL_PWD")
            .env_remove("MYSQL_HOST")
            .env_remove("MYSQL_TCP_PORT")
            .env_remove("MYSQL_UNIX_PORT");
        c
    }

    /// A client program logged in as `rewind` over TCP (password from `client_env()`).
    pub fn client(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.arg("--no-defaults")
            .arg(format!("--user={USER}"))
            .args(["--protocol=TCP", "--host=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .envs(self.client_env());
        c
    }

    /// Runs a script (SQL, or a dump: any bytes) with the `mariadb` client as the administrator, in `db`
    /// when given. Stops at the first error.
    pub fn try_sql(&self, db: Option<&str>, script: &[u8]) -> Output {
        use std::io::Write;
        let mut c = self.root_client("mariadb");
        c.args([
            "--batch",
            "--raw",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
            "--max-allowed-packet=1G",
        ]);
        if let Some(db) = db {
            c.arg(format!("--database={db}"));
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting mariadb (apt-get install mariadb-client)");
        let mut stdin = child.stdin.take().unwrap();
        let script = script.to_vec();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&script);
        });
        let out = child.wait_with_output().unwrap();
        w.join().unwrap();
        out
    }

    /// Runs SQL as the administrator (in `db` when given) and returns its output: tab-separated rows,
    /// no column names, values raw. Panics with the client's stderr on an error.
    pub fn sql(&self, db: Option<&str>, sql: &str) -> String {
        let out = self.try_sql(db, sql.as_bytes());
        let out = self.must_succeed(out, "mariadb");
        String::from_utf8(out.stdout).expect("mariadb printed UTF-8")
    }

    /// One value per output line (a query selecting one column).
    fn lines(&self, db: Option<&str>, sql: &str) -> Vec<String> {
        self.sql(db, sql)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// Rows of a query that selects one JSON_ARRAY(...) per row, parsed.
    fn json_rows(&self, sql: &str) -> Vec<Vec<serde_json::Value>> {
        self.lines(None, sql)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    pub fn create_database(&self, db: &str) {
        self.sql(
            None,
            &format!(
                "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                ident(db)
            ),
        );
    }

    pub fn drop_database(&self, db: &str) {
        self.sql(None, &format!("DROP DATABASE IF EXISTS {}", ident(db)));
    }

    /// The databases on the server, sorted, without the system schemas.
    pub fn databases(&self) -> Vec<String> {
        let not_in: Vec<String> = SYSTEM_SCHEMAS.iter().map(|s| lit(s)).collect();
        self.lines(
            None,
            &format!(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ({}) ORDER BY SCHEMA_NAME",
                not_in.join(", ")
            ),
        )
    }

    /// The base tables of `db`, sorted.
    pub fn tables(&self, db: &str) -> Vec<String> {
        self.lines(
            None,
            &format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} \
                 AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME",
                lit(db)
            ),
        )
    }

    /// Exact row counts (`SELECT COUNT(*)`) of the tables of `db`.
    pub fn row_counts(&self, db: &str) -> BTreeMap<String, u64> {
        let tables = self.tables(db);
        if tables.is_empty() {
            return BTreeMap::new();
        }
        let q: Vec<String> = tables
            .iter()
            .map(|t| {
                format!(
                    "SELECT {}, COUNT(*) FROM {}.{}",
                    lit(t),
                    ident(db),
                    ident(t)
                )
            })
            .collect();
        self.sql(None, &q.join(" UNION ALL "))
            .lines()
            .map(|l| {
                let (t, n) = l.rsplit_once('\t').expect("table<TAB>count");
                (t.to_string(), n.parse().unwrap())
            })
            .collect()
    }

    /// Creates and loads the three databases of the real source: `athena-server` (tables, a view, a
    /// procedure, a function, an audit trigger and a disabled event), `oauth2-users` and `oauth2-server`.
    /// A few hundred deterministic rows per table: non-ASCII text, quotes, backslashes, tabs and
    /// newlines in values, NULLs, DECIMAL, DATETIME(6), JSON, BLOBs holding all 256 byte values, foreign
    /// keys, a composite primary key and a table without one.
    pub fn fixture(&self) {
        let all_bytes: String = (0..=255u8).map(|b| format!("{b:02X}")).collect();
        for (db, script) in [
            ("athena-server", ATHENA_SERVER_SQL),
            ("oauth2-users", OAUTH2_USERS_SQL),
            ("oauth2-server", OAUTH2_SERVER_SQL),
        ] {
            self.create_database(db);
            self.sql(
                Some(db),
                &format!("SET @all_bytes = X'{all_bytes}';\n{script}"),
            );
        }
    }

    /// Creates `db` if needed and appends to its table `large_events` (created if needed) about `bytes`
    /// bytes of row data (the sum of the values' lengths, close to the size of a dump of it): rows of
    /// about 500 bytes, half repetitive text and JSON, half hex digests and binary hashes. Generated by
    /// the server in batches of 100,000 rows (about 50 MB, some 3 s each).
    pub fn fill_large(&self, db: &str, bytes: u64) {
        self.sql(
            None,
            &format!(
                "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                ident(db)
            ),
        );
        self.sql(Some(db), LARGE_TABLE_SQL);
        let mut next: u64 = self
            .sql(
                Some(db),
                &format!("SELECT COALESCE(MAX(id) + 1, 0) FROM {LARGE_TABLE}"),
            )
            .trim()
            .parse()
            .unwrap();
        let mut filled = 0u64;
        let mut per_row = 500u64;
        while filled < bytes {
            // A small first batch measures the row size; the rest are sized by it.
            let cap = if filled == 0 { 1000 } else { 100_000 };
            let rows = ((bytes - filled).div_ceil(per_row)).clamp(1, cap);
            let out = self.sql(Some(db), &large_batch_sql(next, rows));
            let got: u64 = out.trim().parse().unwrap_or_else(|e| panic!("{e}: {out}"));
            filled += got;
            next += rows;
            per_row = (got / rows).max(1);
        }
    }

    /// Stops the server (SIGKILL: a throwaway server needs no clean shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Maria {
    fn drop(&mut self) {
        self.stop();
    }
}

const LARGE_TABLE_SQL: &str = include_str!("large_table.sql");

/// Inserts rows `first..first + rows` of `large_events` and prints their size in bytes.
fn large_batch_sql(first: u64, rows: u64) -> String {
    let last = first + rows - 1;
    format!(
        r#"
INSERT INTO large_events
SELECT n,
  CONCAT_WS('-', SUBSTR(h, 1, 8), SUBSTR(h, 9, 4), SUBSTR(h, 13, 4), SUBSTR(h, 17, 4), SUBSTR(h, 21, 12)),
  CONCAT('customer', n % 50000, '@', ELT(1 + n % 4, 'example.com', 'beispiel.de', '例え.jp', 'mail.example.org')),
  ELT(1 + n % 6, 'login', 'logout', 'purchase', 'refund', 'password_reset', 'token_refresh'),
  (n * 7919 % 10000000) / 100,
  TIMESTAMP('2024-01-01 00:00:00') + INTERVAL n * 250117 MICROSECOND,
  JSON_OBJECT('ip', CONCAT(10 + n % 200, '.', n DIV 256 % 256, '.', n % 256, '.', n * 7 % 256),
    'agent', ELT(1 + n % 3, 'Mozilla/5.0 (X11; Linux x86_64)', 'curl/8.5.0', 'okhttp/4.12'),
    'session', SUBSTR(h, 5, 20), 'items', JSON_ARRAY(n % 97, n % 13, n % 7),
    'note', ELT(1 + n % 3, 'Größe', '注文', 'ok')),
  CONCAT(ELT(1 + n % 4,
      'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore. ',
      'Die Bestellung wurde bearbeitet und an den Kunden übergeben; Rückfragen bitte an den Kundendienst. ',
      'ご注文ありがとうございます。商品は明日発送されます。 ',
      'Request processed successfully with status=200 and no warnings reported by the upstream service. '),
    SHA2(h, 512), ' ', REPEAT('retry=0;', n % 8)),
  UNHEX(SHA2(n, 256))
FROM (SELECT seq AS n, MD5(seq) AS h FROM seq_{first}_to_{last}) s;
SELECT COALESCE(SUM(8 + LENGTH(event_uuid) + LENGTH(account) + LENGTH(kind) + 8 + 8 + LENGTH(payload)
  + LENGTH(body) + LENGTH(digest)), 0)
FROM large_events WHERE id BETWEEN {first} AND {last};
"#
    )
}

/// `athena-server`: customers, orders (foreign key to customers) and an audit log written by a trigger
/// on orders; a view, a procedure, a function and a disabled event. Needs @all_bytes.
const ATHENA_SERVER_SQL: &str = include_str!("athena-server.sql");

/// `oauth2-users`: users and their roles (composite primary key, foreign key to users), a view.
const OAUTH2_USERS_SQL: &str = include_str!("oauth2-users.sql");

/// `oauth2-server`: clients, access tokens (foreign key to clients), a token log without a primary
/// key, a view.
const OAUTH2_SERVER_SQL: &str = include_str!("oauth2-server.sql");
