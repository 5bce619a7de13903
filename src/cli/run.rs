//! `rewind run NAME|FILE key=value ...`: runs one script and prints its result.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Map, Value as Json};

use rewind::base::redact::{redact, redact_json};
use rewind::host::Host;
use rewind::host::runner::{self, Outcome, RunRequest};

use super::{not_found, runtime, split_params, usage};

#[derive(clap::Args)]
pub struct Args {
    /// Script name or path to a .lua file.
    #[arg(add = clap_complete::engine::ArgValueCompleter::new(super::completions::scripts))]
    script: String,
    /// Params as key=value (see `rewind help SCRIPT`).
    #[arg(value_name = "KEY=VALUE", add = clap_complete::engine::ArgValueCompleter::new(super::completions::params))]
    params: Vec<String>,
    /// Read params from a YAML or JSON file; key=value on the command line wins.
    #[arg(long, visible_alias = "params", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    params_file: Option<PathBuf>,
    /// Read secrets (KEY=VALUE lines, or YAML/JSON) into the environment before running; redacted everywhere.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    secrets: Option<PathBuf>,
    /// Print the result as JSON on stdout.
    #[arg(long, env = "REWIND_JSON", value_parser = super::env_bool)]
    json: bool,
}

pub fn run(host: &Host, args: Args) -> ExitCode {
    let cli_params = match split_params(&args.params) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    if let Some(path) = &args.secrets {
        match rewind::prims::env::read_secrets(&path.display().to_string()) {
            // SAFETY: set before any other thread reads the environment (the runtime starts below).
            Ok(values) => values
                .into_iter()
                .for_each(|(k, v)| unsafe { std::env::set_var(k, v) }),
            Err(e) => return usage(format!("{e:#}")),
        }
    }
    let file_params = match args.params_file.as_ref().map(read_params_file).transpose() {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let Some(source) = host.search.find_script(&args.script) else {
        return not_found(&host.search, &args.script);
    };
    if args.json {
        // stdout is the result's: progress goes to stderr as JSON events, for the same readers.
        rewind::prims::progress::set_json();
    }
    let rt = runtime();
    let local = tokio::task::LocalSet::new();
    let quiet_stdout = StdoutToStderr::new(args.json);
    let outcome = local.block_on(
        &rt,
        runner::run(
            host,
            RunRequest {
                source,
                modules: None,
                cli_params,
                file_params,
            },
            runner::shutdown_signal(),
        ),
    );
    drop(quiet_stdout);
    let code = outcome.exit_code();
    match outcome {
        Outcome::Done(result) => print_result(&result, args.json),
        Outcome::Usage(msg) => return usage(msg),
        Outcome::Failed(report) => eprintln!("error: {}", report.render(super::verbose())),
        Outcome::Cancelled => {
            eprintln!("error: {} was cancelled by a signal", args.script)
        }
    }
    // Dropped writers abort their uploads in the background: let that finish before exiting.
    rt.block_on(rewind::base::stream::wait_cleanups(
        std::time::Duration::from_secs(30),
    ));
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    ExitCode::from(code as u8)
}

/// With `--json`, stdout carries the result and nothing else: while the script runs, what it prints
/// (Lua `print`, a prune's plan lines) goes to stderr. Restored when dropped.
struct StdoutToStderr(Option<i32>);

impl StdoutToStderr {
    fn new(on: bool) -> StdoutToStderr {
        if !on {
            return StdoutToStderr(None);
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
        // SAFETY: dup/dup2 on the process's own standard descriptors; on failure stdout stays as it was.
        let saved = unsafe { libc::dup(1) };
        if saved < 0 || unsafe { libc::dup2(2, 1) } < 0 {
            return StdoutToStderr(None);
        }
        StdoutToStderr(Some(saved))
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        if let Some(saved) = self.0.take() {
            let _ = std::io::Write::flush(&mut std::io::stdout());
            // SAFETY: flushes C stdio (Lua's print), then puts the saved descriptor back on 1.
            unsafe {
                libc::fflush(std::ptr::null_mut());
                libc::dup2(saved, 1);
                libc::close(saved);
            }
        }
    }
}

fn read_params_file(path: &PathBuf) -> Result<Map<String, Json>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read params file {}: {e}", path.display()))?;
    let v: Json = serde_norway::from_str(&text)
        .map_err(|e| format!("params file {}: {e}", path.display()))?;
    match v {
        Json::Object(m) => Ok(m),
        Json::Null => Ok(Map::new()),
        _ => Err(format!(
            "params file {}: expected a mapping of param names to values",
            path.display()
        )),
    }
}

fn print_result(result: &Json, json: bool) {
    let mut result = result.clone();
    redact_json(&mut result);
    let text = if json {
        serde_json::to_string_pretty(&result).unwrap_or_default()
    } else {
        match &result {
            Json::Null => return,
            Json::String(s) => s.clone(),
            other => serde_norway::to_string(other)
                .unwrap_or_default()
                .trim_end()
                .to_string(),
        }
    };
    println!("{}", redact(&text));
}
