//! Test helpers for the Treasure Data area: the fake TD server (tests/fakes/td_server.py) and runs of
//! the rewind binary against it.

use std::process::Output;

use super::process::{Killed, python_fake, spawn_announcing, text};

pub const KEY: &str = "1/0123456789abcdef0123456789abcdef01234567";

pub struct Fake {
    _child: Killed,
    pub port: u16,
    pub seed: serde_json::Value,
}

impl Fake {
    pub fn start(args: &[&str]) -> Fake {
        let mut cmd = python_fake("td_server.py");
        cmd.args(["--apikey", KEY]).args(args);
        let (child, line) = spawn_announcing(&mut cmd, "the fake TD server");
        let v: serde_json::Value = serde_json::from_str(&line).expect("fake's first line is JSON");
        Fake {
            port: v["port"].as_u64().unwrap() as u16,
            seed: v["seed"].clone(),
            _child: Killed(child),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn call(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.url());
        let json = [("Content-Type", "application/json")];
        let r = super::http::request(method, &url, &json, Some(body.as_bytes().to_vec()));
        serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        self.call("GET", path, "")
    }

    pub fn config(&self, json: &str) {
        self.call("POST", "/_fake/config", json);
    }

    /// The tree under a folder with ids replaced by names (equal trees up to ids compare equal).
    pub fn canon(&self, folder: &str, skip: &str) -> serde_json::Value {
        self.get(&format!("/_fake/canon/{folder}?skip={skip}"))
    }

    pub fn counts(&self) -> serde_json::Value {
        self.get("/_fake/counts")
    }
}

pub fn rewind(args: &[&str], key: Option<&str>) -> Output {
    let mut c = super::process::rewind();
    c.args(args).env_remove("TD_API_KEY");
    if let Some(k) = key {
        c.env("TD_API_KEY", k);
    }
    c.output().expect("rewind runs")
}

pub fn json_out(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(o)))
}

/// td-ps-backup of the seeded parent segment into `store` (--json).
pub fn backup(fake: &Fake, store: &str, extra: &[&str]) -> std::process::Output {
    let ep = format!("endpoint={}", fake.url());
    let st = format!("store={store}");
    let src = format!("src_ms_id={}", fake.seed["audience_id"].as_str().unwrap());
    let mut args = vec!["run", "td-ps-backup", "--json", &src, &ep, &st];
    args.extend_from_slice(extra);
    rewind(&args, Some(KEY))
}

/// td-ps-restore of the seeded parent segment's backup in `store` under `name` (--json).
pub fn restore(fake: &Fake, store: &str, name: &str, extra: &[&str]) -> std::process::Output {
    restore_cmd(fake, store, name, extra)
        .output()
        .expect("rewind runs")
}

/// The command `restore` runs, for a test that starts it and kills it.
pub fn restore_cmd(fake: &Fake, store: &str, name: &str, extra: &[&str]) -> std::process::Command {
    let mut c = super::process::rewind();
    c.args(["run", "td-ps-restore", "--json", "poll=0.05s"])
        .arg(format!(
            "src_ms_id={}",
            fake.seed["audience_id"].as_str().unwrap()
        ))
        .arg(format!("endpoint={}", fake.url()))
        .arg(format!("store={store}"))
        .arg(format!("ms_name={name}"))
        .args(extra)
        .env("TD_API_KEY", KEY);
    c
}

/// The seeded parent segment's root folder.
pub fn root(fake: &Fake) -> String {
    fake.seed["root_folder_id"].as_str().unwrap().to_string()
}
