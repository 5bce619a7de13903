//! The fake event dispatcher (tests/fakes/dispatcher_fake.py), started on a free port and stopped on
//! drop, with a bytes-capable request helper (the tests' text helper cannot carry stream bytes).

use serde_json::Value;

use super::process::{Killed, python_fake, spawn_announcing};

pub struct Fake {
    _child: Killed,
    pub url: String,
}

impl Fake {
    pub fn start() -> Fake {
        let (child, port) = spawn_announcing(
            &mut python_fake("dispatcher_fake.py"),
            "the dispatcher fake",
        );
        Fake {
            _child: Killed(child),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// One request: Ok((status, body bytes)), or Err when the connection closed without an answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut req = reqwest::Client::new()
                .request(method.parse().unwrap(), format!("{}{path}", self.url));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                req = req.body(b);
            }
            let r = req.send().await.map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            let bytes = r.bytes().await.map_err(|e| e.to_string())?;
            Ok((status, bytes.to_vec()))
        })
    }

    pub fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, bytes) = self
            .call(method, path, &[], body.map(|b| b.to_string().into_bytes()))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Every event of a pair, paging with `limit`: (ids in order, pages).
    pub fn read_all(&self, pair: &str, limit: usize, from: Option<String>) -> (Vec<Value>, String) {
        let mut cursor = from;
        let mut out = Vec::new();
        loop {
            let q = match &cursor {
                Some(c) => format!("?cursor={c}&limit={limit}"),
                None => format!("?limit={limit}"),
            };
            let (status, page) = self.json("GET", &format!("/api/v1/events/{pair}{q}"), None);
            assert_eq!(status, 200, "{page}");
            out.extend(page["events"].as_array().unwrap().iter().cloned());
            cursor = Some(page["next_cursor"].as_str().unwrap().to_string());
            if !page["more"].as_bool().unwrap() {
                return (out, cursor.unwrap());
            }
        }
    }
}
