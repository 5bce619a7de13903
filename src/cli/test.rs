//! `rewind test [DIR|FILE ...]`: runs `*_test.lua` files and prints "N passed, N failed"; `--json` prints
//! the cases as JSON instead, `--junit FILE` also writes them as JUnit XML for CI systems.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rewind::base::redact::redact;
use rewind::host::Host;
use rewind::host::testing::{self, Echo, Summary};

use super::{failed, usage};

#[derive(clap::Args)]
pub struct Args {
    /// Test files or directories (default: tests/lua). Exits 1 when a case fails or none ran.
    // Not named `paths`: clap would merge it with the global `--path` flag's field of that name.
    #[arg(value_name = "PATH")]
    targets: Vec<PathBuf>,
    /// Only cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Print the results as one JSON document on stdout (the PASS/FAIL lines go to stderr):
    /// {"passed": N, "failed": N, "cases": [{"file", "name", "ok", "seconds", "error"}]}.
    #[arg(long, env = "REWIND_JSON", value_parser = super::env_bool)]
    json: bool,
    /// Also write the results as JUnit XML to FILE (one testsuite per test file), for GitLab, GitHub
    /// Actions or Jenkins test reports.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

pub fn run(host: &Host, args: Args) -> ExitCode {
    let paths = if args.targets.is_empty() {
        vec![PathBuf::from("tests/lua")]
    } else {
        args.targets.clone()
    };
    let files = match testing::discover(&paths) {
        Ok(f) => f,
        Err(e) => return usage(format!("{e:#}")),
    };
    // A report that cannot be written is known before any test runs.
    if let Some(j) = &args.junit {
        let dir = j
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return usage(format!(
                "--junit {}: directory {} does not exist",
                j.display(),
                dir.display()
            ));
        }
    }
    let rt = super::runtime();
    let local = tokio::task::LocalSet::new();
    let echo = if args.json {
        Echo::Stderr
    } else {
        Echo::Stdout
    };
    let s = local.block_on(
        &rt,
        testing::run_files(host, &files, args.filter.as_deref(), echo),
    );
    if let Some(j) = &args.junit
        && let Err(e) = write_junit(j, &s)
    {
        return failed(format!("--junit {}: {e:#}", j.display()));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&as_json(&s)).unwrap_or_default()
        );
    } else {
        println!("{} passed, {} failed", s.passed, s.failed);
    }
    if s.failed > 0 {
        ExitCode::from(1)
    } else if s.passed == 0 {
        // A run that tested nothing must not look like a green one (a filter that matches no case, a
        // directory without *_test.lua files).
        let what = match &args.filter {
            Some(f) => format!("no test case matches --filter '{f}'"),
            None => format!("no test cases found in {}", describe(&paths)),
        };
        eprintln!("error: {what}");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn as_json(s: &Summary) -> serde_json::Value {
    let cases: Vec<_> = s
        .cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "file": c.file,
                "name": c.name,
                "ok": c.failure.is_none(),
                "seconds": (c.seconds * 1000.0).round() / 1000.0,
                "error": c.failure.as_deref().map(redact),
            })
        })
        .collect();
    serde_json::json!({"passed": s.passed, "failed": s.failed, "cases": cases})
}

/// JUnit XML: one testsuite per test file, a testcase per case (classname: the file), failures with the
/// error's first line as message and the whole error (Lua traceback included) as text. Written to a
/// temporary file beside FILE and renamed, so a reader never sees half a report.
fn write_junit(path: &Path, s: &Summary) -> anyhow::Result<()> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("rewind test");
    let mut suites: Vec<TestSuite> = Vec::new();
    for c in &s.cases {
        if suites.last().is_none_or(|t| t.name.as_str() != c.file) {
            suites.push(TestSuite::new(c.file.clone()));
        }
        let status = match &c.failure {
            None => TestCaseStatus::success(),
            Some(msg) => {
                let msg = redact(msg);
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(msg.lines().next().unwrap_or("failed").to_string());
                st.set_description(msg.to_string());
                st
            }
        };
        let mut tc = TestCase::new(c.name.clone(), status);
        tc.set_classname(c.file.clone());
        tc.set_time(Duration::from_secs_f64(c.seconds));
        if let Some(suite) = suites.last_mut() {
            suite.add_test_case(tc);
        }
    }
    report.add_test_suites(suites);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    report.serialize(&mut tmp)?;
    tmp.persist(path)?;
    Ok(())
}

fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
