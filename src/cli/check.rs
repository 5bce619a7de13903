//! `rewind check NAME|FILE [key=value ...]`: compiles a script and checks params; runs nothing.

use std::process::ExitCode;

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
}

pub fn run(host: &Host, args: Args) -> ExitCode {
    let Some(source) = host.search.find_script(&args.script) else {
        return not_found(&host.search, &args.script);
    };
    let cli_params = match split_params(&args.params) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let s = match load_script(host, &runtime(), &source) {
        Ok(s) => s,
        Err(e) => return report_load_error(&e),
    };
    if !cli_params.is_empty()
        && let Err(errs) = params::resolve(&s.params, &cli_params, None, &|k| std::env::var(k).ok())
    {
        return usage(runner::params_message(&s, &errs));
    }
    println!(
        "ok: {} ({} params) [{}]",
        s.source.name,
        s.params.len(),
        s.source.origin
    );
    ExitCode::SUCCESS
}
