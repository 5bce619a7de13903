//! `rewind check NAME|FILE [key=value ...]`: compiles a script and checks params; runs nothing.

use std::process::ExitCode;

use serde_json::json;

use rewind::base::errors::Report;
use rewind::base::redact::redact;
use rewind::host::runner;
use rewind::host::{Host, params};

use super::{load_script, not_found, report_load_error, runtime, split_params, usage};

#[derive(clap::Args)]
pub struct Args {
    #[arg(add = clap_complete::engine::ArgValueCompleter::new(super::completions::scripts))]
    script: String,
    /// Also check these params (key=value) against the declaration.
    #[arg(value_name = "KEY=VALUE", add = clap_complete::engine::ArgValueCompleter::new(super::completions::params))]
    params: Vec<String>,
    /// Print JSON on stdout: {"ok": true, "name", "origin", "params": N}, or {"ok": false, "error"} (the
    /// error also on stderr, and the same exit code).
    #[arg(long, env = "REWIND_JSON", value_parser = super::env_bool)]
    json: bool,
}

pub fn run(host: &Host, args: Args) -> ExitCode {
    // With --json a failure is also a JSON answer on stdout.
    let failed = |msg: String, code: ExitCode| {
        if args.json {
            println!("{}", json!({"ok": false, "error": redact(&msg)}));
        }
        code
    };
    let Some(source) = host.search.find_script(&args.script) else {
        let msg = format!("no script named '{}' in the search path", args.script);
        return failed(msg, not_found(&host.search, &args.script));
    };
    let cli_params = match split_params(&args.params) {
        Ok(p) => p,
        Err(e) => return failed(e.clone(), usage(e)),
    };
    let s = match load_script(host, &runtime(), &source) {
        Ok(s) => s,
        Err(e) => return failed(Report::from_lua(&e).render(false), report_load_error(&e)),
    };
    if !cli_params.is_empty()
        && let Err(errs) = params::resolve(&s.params, &cli_params, None, &|k| std::env::var(k).ok())
    {
        let msg = runner::params_message(&s, &errs);
        return failed(msg.clone(), usage(msg));
    }
    if args.json {
        println!(
            "{}",
            json!({"ok": true, "name": s.source.name, "origin": s.source.origin.to_string(),
                   "params": s.params.len()})
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "ok: {} ({} params) [{}]",
        s.source.name,
        s.params.len(),
        s.source.origin
    );
    ExitCode::SUCCESS
}
