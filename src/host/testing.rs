//! `rewind test`: runs `*_test.lua` files. Each file gets a fresh state; it registers cases with
//! `require("rewind.testing").test(name, fn)`, and each case runs as an async function.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mlua::{Function, Table};

use super::Host;
use crate::base::errors::Report;

pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    /// Every case run (and every file that failed to load, as a case named "(load)", ...), in order.
    pub cases: Vec<CaseOutcome>,
}

/// One case's result, for `--json` and `--junit`.
pub struct CaseOutcome {
    pub file: String,
    pub name: String,
    pub seconds: f64,
    /// `None` when it passed; the error (with its Lua traceback) when it failed.
    pub failure: Option<String>,
}

impl Summary {
    /// Counts, prints and keeps one case's result.
    fn record(
        &mut self,
        echo: Echo,
        file: &str,
        name: &str,
        seconds: f64,
        failure: Option<String>,
    ) {
        match &failure {
            None => {
                self.passed += 1;
                echo.line(&format!(
                    "PASS {file} :: {name} ({} ms)",
                    (seconds * 1000.0) as u64
                ));
            }
            Some(msg) => {
                self.failed += 1;
                echo.line(&format!(
                    "FAIL {file} :: {name}\n     {}",
                    msg.replace('\n', "\n     ")
                ));
            }
        }
        self.cases.push(CaseOutcome {
            file: file.to_string(),
            name: name.to_string(),
            seconds,
            failure,
        });
    }
}

/// Where the runner prints its PASS/FAIL lines: stdout, or stderr when stdout carries JSON.
#[derive(Clone, Copy)]
pub enum Echo {
    Stdout,
    Stderr,
}

impl Echo {
    fn line(self, text: &str) {
        match self {
            Echo::Stdout => println!("{text}"),
            Echo::Stderr => eprintln!("{text}"),
        }
    }
}

/// Collects the test files under the given paths (files are taken as they are).
pub fn discover(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else if p.is_dir() {
            for e in walkdir::WalkDir::new(p).sort_by_file_name() {
                let e = e?;
                if e.file_type().is_file() && e.file_name().to_string_lossy().ends_with("_test.lua")
                {
                    out.push(e.into_path());
                }
            }
        } else {
            anyhow::bail!(super::UsageError(format!(
                "{}: no such test file or directory",
                p.display()
            )));
        }
    }
    Ok(out)
}

/// Runs every case in every file; prints one line per case and returns the counts and the cases.
pub async fn run_files(
    host: &Host,
    files: &[PathBuf],
    filter: Option<&str>,
    echo: Echo,
) -> Summary {
    let mut s = Summary {
        passed: 0,
        failed: 0,
        cases: Vec::new(),
    };
    for f in files {
        run_file(host, f, filter, echo, &mut s).await;
    }
    s
}

async fn run_file(host: &Host, file: &Path, filter: Option<&str>, echo: Echo, s: &mut Summary) {
    let label = file.display().to_string();
    let started = Instant::now();
    let fail = |s: &mut Summary, name: &str, msg: &str| {
        s.record(
            echo,
            &label,
            name,
            started.elapsed().as_secs_f64(),
            Some(msg.to_string()),
        )
    };
    let lua = match host.new_state() {
        Ok(l) => l,
        Err(e) => return fail(s, "(state)", &e.to_string()),
    };
    let code = match std::fs::read_to_string(file) {
        Ok(c) => c,
        Err(e) => return fail(s, "(load)", &e.to_string()),
    };
    if let Err(e) = lua
        .load(code)
        .set_name(format!("@{label}"))
        .exec_async()
        .await
    {
        return fail(s, "(load)", &Report::from_lua(&e).render(true));
    }
    let cases: mlua::Result<Vec<Table>> = (|| {
        let testing: Table = lua.load("return require('rewind.testing')").eval()?;
        let list: Table = testing.get("_cases")?;
        list.sequence_values::<Table>().collect()
    })();
    let cases = match cases {
        Ok(c) => c,
        Err(e) => return fail(s, "(cases)", &e.to_string()),
    };
    if cases.is_empty() {
        return fail(s, "(cases)", "the file registered no test cases");
    }
    for case in cases {
        let name: String = case.get("name").unwrap_or_default();
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let Ok(f) = case.get::<Function>("fn") else {
            fail(s, &name, "not a function");
            continue;
        };
        let start = Instant::now();
        let res = f.call_async::<()>(()).await;
        super::runner::run_on_exit(&lua).await;
        let took = start.elapsed().as_secs_f64();
        let failure = res.err().map(|e| Report::from_lua(&e).render(true));
        s.record(echo, &label, &name, took, failure);
    }
}
