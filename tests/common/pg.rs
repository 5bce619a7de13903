//! Throwaway PostgreSQL clusters for tests: Debian's server binaries, `initdb` into a temp dir, a unix
//! socket in that dir (no TCP), password auth (scram) for the `druid` superuser. When the tests run as
//! root the server runs as the `postgres` user, which owns the temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::process::must_succeed;

pub const USER: &str = "druid";
pub const PASSWORD: &str = "s3cr3t-PgPass-7f1c";

/// The directory holding initdb/pg_ctl: /usr/lib/postgresql/<newest>/bin, else PATH.
pub fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

pub struct Pg {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub port: u16,
}

impl Pg {
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a server program (initdb, pg_ctl) as the owner of the cluster.
    fn server_cmd(&self, prog: &str) -> Command {
        let path = self.bin.join(prog);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    pub fn start() -> Pg {
        let bin = bin_dir()
            .expect("PostgreSQL server binaries not found (tests/run.sh installs postgresql)");
        let dir = tempfile::Builder::new()
            .prefix("rewind-pg-")
            .tempdir()
            .unwrap();
        let port = 20000 + (std::process::id() % 20000) as u16;
        let pg = Pg { dir, bin, port };
        let pwfile = pg.dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .unwrap();
            assert!(st.success());
        }
        let out = pg
            .server_cmd("initdb")
            .arg("-D")
            .arg(pg.data())
            .args([
                "-U",
                USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        must_succeed(out, "initdb");
        let opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -p {} -c fsync=off -c max_connections=20",
            pg.socket_dir().display(),
            pg.port
        );
        let out = pg
            .server_cmd("pg_ctl")
            .arg("-D")
            .arg(pg.data())
            .arg("-l")
            .arg(pg.dir.path().join("log"))
            .args(["-o", &opts, "-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(pg.dir.path().join("log")).unwrap_or_default()
        );
        pg
    }

    /// PG* variables a client needs (PGPASSWORD included).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut e = self.env_no_password();
        e.push(("PGPASSWORD".into(), PASSWORD.into()));
        e
    }

    pub fn env_no_password(&self) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), self.socket_dir().display().to_string()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), USER.into()),
        ]
    }

    pub fn client(&self, prog: &str) -> Command {
        let mut c = Command::new(self.bin.join(prog));
        c.envs(self.env());
        c
    }

    /// Runs SQL in `db` and returns psql's unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.try_psql(db, sql);
        let out = must_succeed(out, "psql");
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn try_psql(&self, db: &str, sql: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .client("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-f",
                "-",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let sql = sql.to_string();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(sql.as_bytes());
        });
        let out = child.wait_with_output().unwrap();
        w.join().unwrap();
        out
    }

    pub fn createdb(&self, db: &str) {
        self.psql("postgres", &format!("create database \"{db}\""));
    }

    pub fn dropdb(&self, db: &str) {
        self.psql(
            "postgres",
            &format!("drop database if exists \"{db}\" with (force)"),
        );
    }

    /// `pg_dump --data-only` of a database, for comparing contents.
    pub fn data_dump(&self, db: &str) -> String {
        let out = self
            .client("pg_dump")
            .args(["--data-only", "--no-owner", "--no-acl", "-d", db])
            .output()
            .unwrap();
        let out = must_succeed(out, "pg_dump");
        // pg_dump 15.14+ brackets the script with `\restrict <random key>`: not content.
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self
            .server_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The Druid metadata schema (api-notes.md), as Druid creates it on PostgreSQL (unquoted names fold to lower case).
pub const DRUID_SCHEMA: &str = r#"
create table druid_segments (id varchar(255) primary key, dataSource varchar(255) not null,
  created_date varchar(255) not null, start varchar(255) not null, "end" varchar(255) not null,
  partitioned boolean not null, version varchar(255) not null, used boolean not null, payload bytea not null,
  used_status_last_updated varchar(255));
create index idx_druid_segments_used on druid_segments(used);
create table druid_rules (id varchar(255) primary key, dataSource varchar(255) not null, version varchar(255) not null, payload bytea not null);
create table druid_config (name varchar(255) primary key, payload bytea not null);
create table druid_dataSource (dataSource varchar(255) primary key, created_date varchar(255) not null,
  commit_metadata_payload bytea not null, commit_metadata_sha1 varchar(255) not null);
create table druid_supervisors (id serial primary key, spec_id varchar(255) not null, created_date varchar(255) not null, payload bytea not null);
create table druid_tasks (id varchar(255) primary key, created_date varchar(255) not null, datasource varchar(255) not null,
  payload bytea not null, status_payload bytea not null, active boolean not null default false);
create table druid_pendingSegments (id varchar(255) primary key, dataSource varchar(255) not null, created_date varchar(255) not null,
  start varchar(255) not null, "end" varchar(255) not null, sequence_name varchar(255) not null, sequence_prev_id varchar(255) not null,
  sequence_name_prev_id_sha1 varchar(255) not null, payload bytea not null);
create table druid_audit (id serial primary key, audit_key varchar(255) not null, type varchar(255) not null,
  author varchar(255) not null, comment varchar(2048) not null, created_date varchar(255) not null, payload bytea not null);
"#;

/// One segment of the fixture.
#[derive(Clone, Debug)]
pub struct Segment {
    pub datasource: String,
    pub interval: String,
    pub rel_path: String,
    pub used: bool,
}

/// Creates the Druid schema in `db` with `per_ds` daily segments for two datasources, and writes their
/// files (plus indexing logs) under `deep`. loadSpec paths name `load_root` (e.g. /opt/shared).
pub fn druid_fixture(
    pg: &Pg,
    db: &str,
    deep: &Path,
    load_root: &str,
    per_ds: usize,
) -> Vec<Segment> {
    let mut sql = String::from(DRUID_SCHEMA);
    let mut segs = Vec::new();
    let version = "2019-12-03T10:00:00.000Z";
    for ds in ["wikipedia", "kafka_metrics"] {
        for d in 0..per_ds {
            let day = chrono::NaiveDate::from_ymd_opt(2019, 12, 1).unwrap()
                + chrono::Duration::days(d as i64);
            let next = day + chrono::Duration::days(1);
            let start = format!("{}T00:00:00.000Z", day.format("%Y-%m-%d"));
            let end = format!("{}T00:00:00.000Z", next.format("%Y-%m-%d"));
            let rel = format!("segments/{ds}/{start}_{end}/{version}/0/index.zip");
            let file = deep.join(&rel);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            let body: Vec<u8> = (0..4096 + d * 37)
                .map(|i| ((i * 31 + d * 7 + ds.len()) % 251) as u8)
                .collect();
            std::fs::write(&file, body).unwrap();
            let id = format!("{ds}_{start}_{end}_{version}");
            let used = d % 5 != 4; // every fifth segment is unused (its file stays)
            let payload = serde_json::json!({
                "dataSource": ds, "interval": format!("{start}/{end}"), "version": version,
                "loadSpec": {"type": "local", "path": format!("{load_root}/{rel}")},
                "dimensions": "page,user", "metrics": "count", "shardSpec": {"type": "numbered", "partitionNum": 0},
                "binaryVersion": 9, "size": 4096, "identifier": id,
            });
            sql.push_str(&format!(
                "insert into druid_segments values ('{id}', '{ds}', '2019-12-03T10:00:00.000Z', '{start}', '{end}', true, '{version}', {used}, convert_to('{}', 'UTF8'), '2019-12-03T10:00:00.000Z');\n",
                payload.to_string().replace('\'', "''")
            ));
            segs.push(Segment {
                datasource: ds.into(),
                interval: format!("{start}/{end}"),
                rel_path: rel,
                used,
            });
        }
        sql.push_str(&format!(
            "insert into druid_rules values ('{ds}_2019', '{ds}', '2019', convert_to('[{{\"type\":\"loadForever\"}}]', 'UTF8'));
insert into druid_dataSource values ('{ds}', '2019-12-01', '\\x7b7d'::bytea, 'abc');
insert into druid_supervisors (spec_id, created_date, payload) values ('{ds}', '2019-12-01', convert_to('{{\"type\":\"kafka\"}}', 'UTF8'));
insert into druid_tasks values ('index_{ds}_1', '2019-12-01', '{ds}', '\\x00ff'::bytea, convert_to('{{\"status\":\"SUCCESS\"}}','UTF8'), false);
insert into druid_pendingSegments values ('{ds}_p', '{ds}', '2019-12-01', 'a', 'b', 'seq', '', 'sha', '\\x01'::bytea);
insert into druid_audit (audit_key, type, author, comment, created_date, payload) values ('{ds}', 'rules', 'admin', 'it''s set', '2019-12-01', '\\x02'::bytea);
"
        ));
    }
    sql.push_str("insert into druid_config values ('coordinator.config', convert_to('{\"maxSegmentsToMove\":5}', 'UTF8'));\n");
    pg.createdb(db);
    pg.psql(db, &sql);
    std::fs::create_dir_all(deep.join("indexing-logs")).unwrap();
    std::fs::write(
        deep.join("indexing-logs/index_wikipedia_1.log"),
        "task log\n",
    )
    .unwrap();
    segs
}

/// Cuts the last byte off the metadata dump in a local store and makes its manifest agree (a dump that was
/// already bad when it was written): verification passes, and pg_restore fails in the last table's data,
/// after it has dropped, recreated and loaded the tables before it.
pub fn truncate_dump(store: &Path) {
    use sha2::Digest;
    let all = super::process::files(store);
    let name = |p: &PathBuf, s: &str| p.file_name().unwrap().to_string_lossy().starts_with(s);
    let dump = all
        .iter()
        .find(|p| name(p, "druid_metadata_dump_"))
        .expect("a dump");
    let bytes = std::fs::read(dump).unwrap();
    let cut = &bytes[..bytes.len() - 1];
    std::fs::write(dump, cut).unwrap();
    let manifest = all
        .iter()
        .find(|p| name(p, "manifest_"))
        .expect("a manifest");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    for o in m["objects"].as_array_mut().unwrap() {
        if o["name"] == "druid_metadata_dump" {
            o["size"] = cut.len().into();
            o["sha256"] = hex::encode(sha2::Sha256::digest(cut)).into();
        }
    }
    std::fs::write(manifest, m.to_string()).unwrap();
}
