//! Test helpers for the Treasure Data area: the fake TD server (tests/fakes/td_server.py) and runs of
//! the rewind binary against it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const KEY: &str = "1/0123456789abcdef0123456789abcdef01234567";

pub struct Fake {
    child: Child,
    pub port: u16,
    pub seed: serde_json::Value,
}

impl Fake {
    pub fn start(args: &[&str]) -> Fake {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/td_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--apikey", KEY])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the fake TD server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("fake prints its port");
        let v: serde_json::Value = serde_json::from_str(&line).expect("fake's first line is JSON");
        Fake {
            port: v["port"].as_u64().unwrap() as u16,
            seed: v["seed"].clone(),
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn call(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
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

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rewind(args: &[&str], key: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rewind"));
    c.args(args).env_remove("TD_API_KEY").env("NO_COLOR", "1");
    if let Some(k) = key {
        c.env("TD_API_KEY", k);
    }
    c.output().expect("rewind runs")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn json_out(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(o)))
}

/// Every file under a directory.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}
