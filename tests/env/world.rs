//! One application environment for env-backup / env-restore, made of real and fake parts: a real
//! MariaDB server with the source's three databases, a configuration directory and a git checkout made
//! here, and the fakes of Elasticsearch, Firebase and the maintenance switch (tests/fakes/).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use serde_json::{Value, json};

use crate::common::archive::{Node, snapshot_tree};
use crate::common::http::request;
use crate::common::mariadb::{self, Maria};
use crate::common::process::{Killed, python_fake, rewind, spawn_announcing, text};

pub const FIREBASE_SECRET: &str = "fb-Secret-4f2a9c71e0";
pub const FIREBASE_TOKEN: &str = "ya29.fbAccessTok3n-b81d";
pub const MAINTENANCE_TOKEN: &str = "maint-Token-77c1b3";
pub const DATABASES: [&str; 3] = ["athena-server", "oauth2-users", "oauth2-server"];
/// A credential in the deployment checkout's remote URL: must not reach the manifest.
pub const GIT_TOKEN: &str = "ghp_RemoteTok3n5ecret";

pub struct World {
    pub dir: tempfile::TempDir,
    pub maria: Maria,
    pub es_port: u16,
    pub fb_port: u16,
    pub maint_port: u16,
    _fakes: Vec<Killed>,
}

fn fake(name: &str, args: &[&str]) -> (Killed, u16) {
    let (child, port) = spawn_announcing(python_fake(name).args(args), name);
    (Killed(child), port.parse().expect("a fake prints its port"))
}

fn sh(dir: &Path, cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{cmd}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl World {
    pub fn start() -> World {
        let dir = tempfile::Builder::new()
            .prefix("rewind-env-")
            .tempdir()
            .unwrap();
        let maria = Maria::start();
        maria.fixture();
        let repo_root = dir.path().join("es-repo");
        std::fs::create_dir_all(&repo_root).unwrap();
        let (es, es_port) = fake("es_fake.py", &["--path-repo", repo_root.to_str().unwrap()]);
        let (fb, fb_port) = fake(
            "firebase_fake.py",
            &["--secret", FIREBASE_SECRET, "--token", FIREBASE_TOKEN],
        );
        let (mt, maint_port) = fake("maintenance_fake.py", &["--token", MAINTENANCE_TOKEN]);
        let w = World {
            dir,
            maria,
            es_port,
            fb_port,
            maint_port,
            _fakes: vec![es, fb, mt],
        };
        w.make_config();
        w.make_git();
        w.seed_es();
        w.set_firebase(&json!({
            "users": {"u1": {"name": "Jürgen", "score": 10}, "u2": {"name": "東京", "score": 7}},
            "settings": {"theme": "dark", "flags": [true, false, null]}
        }));
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn config_dir(&self) -> PathBuf {
        self.path("app/config-local")
    }
    pub fn git_dir(&self) -> PathBuf {
        self.path("app/deployment")
    }
    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    fn make_config(&self) {
        let c = self.config_dir();
        std::fs::create_dir_all(c.join("nginx/sites")).unwrap();
        std::fs::write(c.join("app.env"), "DB_HOST=127.0.0.1\nLANG=ja_JP.UTF-8\n").unwrap();
        std::fs::write(c.join("nginx/sites/athena.conf"), "server { listen 80; }\n").unwrap();
        std::fs::write(c.join("secret.key"), [0u8, 1, 2, 255, 254]).unwrap();
        sh(
            &c,
            "chmod 600 secret.key && chmod 750 nginx && ln -s sites/athena.conf nginx/default.conf",
        );
    }

    pub fn config_tree(&self) -> BTreeMap<PathBuf, Node> {
        snapshot_tree(&self.config_dir())
    }

    fn make_git(&self) {
        let g = self.git_dir();
        std::fs::create_dir_all(&g).unwrap();
        sh(
            &g,
            "git init -q -b main . && git config user.email t@example.com && git config user.name t",
        );
        std::fs::write(g.join("docker-compose.yml"),
            "services:\n  web:\n    image: \"123.dkr.ecr.eu-west-1.amazonaws.com/athena-web:1.4.2\"\n  api:\n    image: athena-api:2.0.1\n").unwrap();
        sh(&g, "git add -A && git commit -q -m one");
        sh(
            &g,
            &format!(
                "git remote add origin https://deploy:{GIT_TOKEN}@github.com/clarius/deployment.git"
            ),
        );
    }

    pub fn git_head(&self) -> String {
        sh(&self.git_dir(), "git rev-parse HEAD")
    }

    pub fn git_commit(&self, msg: &str) -> String {
        sh(
            &self.git_dir(),
            &format!("echo {msg} >> CHANGES && git add -A && git commit -q -m {msg}"),
        );
        self.git_head()
    }

    fn es(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let r = request(
            method,
            &format!("http://127.0.0.1:{}{path}", self.es_port),
            &[],
            body.map(|b| b.as_bytes().to_vec()),
        );
        serde_json::from_str(&r.body).unwrap_or(Value::Null)
    }

    fn seed_es(&self) {
        let mut bulk = String::new();
        for (idx, n) in [("patients", 40), ("audit-2026.12", 25)] {
            for i in 0..n {
                bulk.push_str(&format!(
                    "{{\"index\":{{\"_index\":\"{idx}\",\"_id\":\"{i}\"}}}}\n"
                ));
                bulk.push_str(&format!("{{\"n\":{i},\"text\":\"Größe {i} 🎉\"}}\n"));
            }
        }
        self.es("POST", "/_bulk", Some(&bulk));
    }

    /// Every document of every index, by index and id.
    pub fn es_docs(&self) -> BTreeMap<String, Vec<Value>> {
        let mut out = BTreeMap::new();
        let cat = self.es("GET", "/_cat/indices?format=json", None);
        for i in cat.as_array().cloned().unwrap_or_default() {
            let idx = i["index"].as_str().unwrap().to_string();
            let r = self.es("GET", &format!("/{idx}/_search?size=10000"), None);
            let mut docs: Vec<Value> = r["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|h| json!([h["_id"], h["_source"]]))
                .collect();
            docs.sort_by_key(|d| d[0].to_string());
            out.insert(idx, docs);
        }
        out
    }

    pub fn es_delete_index(&self, idx: &str) {
        self.es("DELETE", &format!("/{idx}"), None);
    }
    pub fn es_put_doc(&self, idx: &str, id: &str, doc: &Value) {
        self.es("PUT", &format!("/{idx}/_doc/{id}"), Some(&doc.to_string()));
    }

    pub fn firebase(&self) -> Value {
        let r = request(
            "GET",
            &format!("http://127.0.0.1:{}/_fake/tree", self.fb_port),
            &[],
            None,
        );
        serde_json::from_str(&r.body).unwrap()
    }
    pub fn set_firebase(&self, v: &Value) {
        let body = v.to_string();
        request(
            "PUT",
            &format!("http://127.0.0.1:{}/_fake/tree", self.fb_port),
            &[],
            Some(body.as_bytes().to_vec()),
        );
    }

    /// Makes the next `count` matching requests of a fake fail (after applying them when `after`).
    pub fn fail(
        &self,
        port: u16,
        method: &str,
        path_contains: &str,
        status: u16,
        after: bool,
        count: u32,
    ) {
        let body = json!({"method": method, "path_contains": path_contains, "status": status, "after": after, "count": count}).to_string();
        request(
            "POST",
            &format!("http://127.0.0.1:{port}/_fake/fail"),
            &[],
            Some(body.as_bytes().to_vec()),
        );
    }
    pub fn reset_faults(&self) {
        for port in [self.es_port, self.fb_port, self.maint_port] {
            request(
                "POST",
                &format!("http://127.0.0.1:{port}/_fake/reset_faults"),
                &[],
                Some(b"{}".to_vec()),
            );
        }
    }

    /// The maintenance switch's history: "on"/"off" in order.
    pub fn maintenance_history(&self) -> Vec<String> {
        let r = request(
            "GET",
            &format!("http://127.0.0.1:{}/maintenance", self.maint_port),
            &[],
            None,
        );
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["state"].as_str().unwrap().to_string())
            .collect()
    }

    /// The params file of this environment (no secrets: those come from the environment).
    pub fn params_file(&self, extra: &str) -> PathBuf {
        let p = self.path(&format!("env-{}.yaml", crate::common::process::unique()));
        let dbs: Vec<String> = DATABASES.iter().map(|d| format!("\"{d}\"")).collect();
        let yaml = format!(
            "store: {store}\nprefix: env/test\ntarget: test\nconfig:\n  dir: {config}\ngit:\n  dir: {git}\nimages:\n  compose_file: {git}/docker-compose.yml\n\
             mysql:\n  databases: [{dbs}]\n  host: 127.0.0.1\n  port: {port}\n  user: {user}\n\
             elasticsearch:\n  url: http://127.0.0.1:{es}\n  location: {repo}/backup\n\
             firebase:\n  url: http://127.0.0.1:{fb}\n\
             maintenance:\n  on: http://127.0.0.1:{mt}/maintenance/on\n  off: http://127.0.0.1:{mt}/maintenance/off\n{extra}",
            store = self.store().display(),
            config = self.config_dir().display(),
            git = self.git_dir().display(),
            dbs = dbs.join(", "),
            port = self.maria.port(),
            user = mariadb::USER,
            es = self.es_port,
            repo = self.path("es-repo").display(),
            fb = self.fb_port,
            mt = self.maint_port,
        );
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// `rewind run SCRIPT --params-file FILE ARGS...` with the secrets in the environment.
    pub fn command(&self, script: &str, params_file: &Path, args: &[&str]) -> Command {
        self.command_with(&[], script, params_file, args)
    }

    /// The same with global options first (`-vv`, `--log-format json`).
    pub fn command_with(
        &self,
        global: &[&str],
        script: &str,
        params_file: &Path,
        args: &[&str],
    ) -> Command {
        let mut c = rewind();
        c.args(global)
            .args(["run", "--json", script, "--params-file"])
            .arg(params_file)
            .args(args);
        c.env("MYSQL_PWD", mariadb::PASSWORD)
            .env("FIREBASE_SECRET", FIREBASE_SECRET)
            .env("MAINTENANCE_TOKEN", MAINTENANCE_TOKEN)
            .env("HOME", self.path("home"))
            .current_dir(self.dir.path());
        c
    }

    pub fn run(&self, script: &str, args: &[&str]) -> Output {
        let pf = self.params_file("");
        self.command(script, &pf, args).output().unwrap()
    }

    /// A plain env-backup of the whole environment; returns its snapshot id.
    pub fn backup(&self) -> String {
        result(&self.run("env-backup", &[]))["snapshot"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn spawn(&self, script: &str, params_file: &Path, args: &[&str]) -> Child {
        self.command(script, params_file, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The state of every database, by name.
    pub fn databases(&self) -> BTreeMap<String, mariadb::DbState> {
        DATABASES
            .iter()
            .map(|d| (d.to_string(), self.maria.state(d)))
            .collect()
    }

    /// Manifests under the prefix, by id.
    pub fn manifests(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for f in crate::common::process::files(&self.store()) {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("manifest") && name.ends_with(".json") {
                let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
                out.insert(v["id"].as_str().unwrap().to_string(), v);
            }
        }
        out
    }

    /// Every byte rewind left in the store and the working directory, as text, for secret scans.
    pub fn everything_written(&self) -> String {
        let mut all = String::new();
        // The environment's own files (the checkout's .git/config holds its remote's credential) are not ours.
        let mut written = crate::common::process::files(&self.store());
        written.extend(crate::common::process::files(&self.path("home")));
        for f in written {
            let bytes = std::fs::read(&f).unwrap_or_default();
            let plain = if f.to_string_lossy().ends_with(".zst") {
                zstd::decode_all(&bytes[..]).unwrap_or(bytes)
            } else {
                bytes
            };
            all.push_str(&String::from_utf8_lossy(&plain));
        }
        all
    }
}

/// The result JSON a run printed on stdout (its last line).
pub fn result(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON result ({e}): {}", text(out)))
}

/// Panics naming the secret if it appears in `haystack`.
pub fn assert_no_secrets(haystack: &str, what: &str) {
    for s in [
        mariadb::PASSWORD,
        FIREBASE_SECRET,
        MAINTENANCE_TOKEN,
        GIT_TOKEN,
    ] {
        assert!(
            !haystack.contains(s),
            "a secret ({}...) appears in {what}",
            &s[..4]
        );
    }
}
