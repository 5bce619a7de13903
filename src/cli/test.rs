//! `rewind test [DIR|FILE ...]`: runs `*_test.lua` files and prints "N passed, N failed".

use std::path::PathBuf;
use std::process::ExitCode;

use rewind::host::{Host, testing};

use super::{runtime, usage};

#[derive(clap::Args)]
pub struct Args {
    /// Test files or directories (default: tests/lua).
    paths: Vec<PathBuf>,
    /// Only cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
}

pub fn run(host: &Host, args: Args) -> ExitCode {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("tests/lua")]
    } else {
        args.paths
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
    } else {
        ExitCode::SUCCESS
    }
}
