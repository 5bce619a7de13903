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
