//! The `rewind` command line, run as a user runs it: exit codes, params, errors, secrets, the search
//! path (shadowing bundled scripts and modules with no rebuild), logs and signals.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn from_output(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = common::process::rewind();
    c.args(args)
        .current_dir(dir)
        .env_remove("P_TOKEN")
        .env_remove("P_LEVEL");
    c
}

fn rewind(dir: &Path, args: &[&str]) -> Run {
    from_output(cmd(dir, args).output().expect("run rewind"))
}

fn rewind_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = cmd(dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    from_output(c.output().expect("run rewind"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// A script declaring one param of each type, plus a secret and a dotted name from a nested file.
const PARAMS_SCRIPT: &str = r#"
local log = require("rewind.log")
return {
  description = "Declares one param of each type\nSecond line of the description.",
  params = {
    name = { type = "string", required = true, doc = "who to greet" },
    ratio = { type = "number", default = 1.5, doc = "a number" },
    count = { type = "integer", default = 2, doc = "an integer" },
    flag = { type = "boolean", default = false, doc = "a flag" },
    wait = { type = "duration", default = "10m", doc = "how long to wait" },
    day = { type = "date", doc = "a day" },
    tables = { type = "list", doc = "table names" },
    opts = { type = "table", doc = "free-form options" },
    level = { type = "string", default = "default-level", env = "P_LEVEL", doc = "from env or default" },
    ["s3.bucket"] = { type = "string", doc = "bucket (s3: {bucket:} in a params file)" },
    token = { type = "string", secret = true, env = "P_TOKEN", doc = "an API token" },
  },
  run = function(p, ctx)
    log.info("starting with token " .. tostring(p.token), { token = p.token })
    log.debug("debug line", { token = p.token })
    if p.name == "fail" then error("remote refused token " .. tostring(p.token)) end
    return { p = p, public = ctx.public_params }
  end,
}
"#;

fn json_of(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

mod completions;
mod config;
mod json;
mod lua_tests;
mod man;
mod output;
mod params;
mod search_path;
mod signals;
