//! The `rewind` binary: parse the command line, hand it to its command, exit with its code.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use rewind::host::{Host, SearchPath};

fn main() -> ExitCode {
    // A completion script called back (`_REWIND_COMPLETE=SHELL rewind -- WORDS`): answer and exit.
    cli::completions::complete_if_asked();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    cli::logging::init(&cli);
    cli::set_verbose(cli.verbose > 0);
    let host = Host::new(SearchPath::new(&cli.paths));
    match cli.command {
        Command::Run(args) => cli::run::run(&host, args),
        Command::List(args) => cli::list::run(&host, args),
        Command::Help(args) => cli::help::run(&host, args),
        Command::Check(args) => cli::check::run(&host, args),
        Command::Test(args) => cli::test::run(&host, args),
        Command::Daemon(args) => cli::daemon::run(host, *args),
        Command::Jobs(args) => cli::jobs::run(args),
        Command::Stdlib { action } => cli::stdlib::run(action),
        Command::Key { action } => cli::key::run(action),
        Command::Admin { action } => cli::admin::run(action),
        Command::Completions(args) => cli::completions::run(args),
        Command::Man(args) => cli::man::run(&host, args),
    }
}
