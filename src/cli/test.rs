//! `rewind test [DIR|FILE ...]`: runs `*_test.lua` files and prints "N passed, N failed".

use std::path::PathBuf;
use std::process::ExitCode;

use rewind::host::{Host, testing};

use super::{runtime, usage};

#[derive(clap::Args)]
pub struct Args {
    /// Test files or directories (default: tests/lua). Exits 1 when a case fails or none ran.
    // Not named `paths`: clap would merge it with the global `--path` flag's field of that name.
    #[arg(value_name = "PATH")]
    targets: Vec<PathBuf>,
    /// Only cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
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
    let rt = runtime();
    let local = tokio::task::LocalSet::new();
    let s = local.block_on(
        &rt,
        testing::run_files(host, &files, args.filter.as_deref()),
    );
    println!("{} passed, {} failed", s.passed, s.failed);
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

fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
