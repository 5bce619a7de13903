//! Reads a `/metrics` answer with the Prometheus project's own OpenMetrics parser (the
//! `prometheus_client` Python package, installed by tests/run.sh beside moto): what a scrape sees.

use std::io::Write;
use std::process::{Command, Stdio};

use super::process::must_succeed;

#[derive(Debug, serde::Deserialize)]
pub struct Sample {
    /// The metric family's name and type (`counter`, `gauge`, `histogram`, ...).
    pub family: String,
    pub kind: String,
    /// The sample's own name (`rewind_runs_total`, `..._bucket`).
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

const PARSE: &str = "import sys, json\n\
from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
out = [dict(family=f.name, kind=f.type, name=s.name, labels=s.labels, value=s.value)\n\
       for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]\n\
print(json.dumps(out))";

/// Every sample of an OpenMetrics text; panics (with the parser's message) on text a scrape rejects.
pub fn parse(text: &str) -> Vec<Sample> {
    let mut child = Command::new(super::azure::python())
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python with prometheus_client (tests/run.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = must_succeed(child.wait_with_output().unwrap(), "the OpenMetrics parser");
    serde_json::from_slice(&out.stdout).unwrap()
}
