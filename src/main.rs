//! The `rewind` binary: parse the command line, settle the settings (flag, REWIND_* variable, config
//! file, default), hand the command line to its command, exit with its code.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command};
use rewind::host::{Host, SearchPath};

fn main() -> ExitCode {
    cli::settings::drop_empty_vars();
    // A completion script called back (`_REWIND_COMPLETE=SHELL rewind -- WORDS`): answer and exit.
    cli::completions::complete_if_asked();
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (mut cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            if let Some(note) = cli::env_note(&e) {
                eprintln!("\nnote: {note}");
            }
            return ExitCode::from(code);
        }
    };
    if let Command::Config(args) = &cli.command
        && cli::config::wants_path(args)
    {
        return cli::config::print_path(&cli::settings::locate(&matches));
    }
    // A bad config file stops every command before anything runs.
    let settings = match cli::settings::resolve(&mut cli, &matches) {
        Ok(s) => s,
        Err(e) => return cli::usage(e),
    };
    cli::logging::init(&cli);
    cli::set_verbose(cli.verbose > 0);
    let host = Host::new(SearchPath::with_config(&cli.paths, &settings.config_dirs()));
    let sub = |name: &str| {
        matches
            .subcommand_matches(name)
            .expect("the parsed subcommand")
    };
    match cli.command {
        Command::Run(args) => cli::run::run(&host, args),
        Command::List(args) => cli::list::run(&host, args),
        Command::Help(args) => cli::help::run(&host, args),
        Command::Check(args) => cli::check::run(&host, args),
        Command::Test(args) => cli::test::run(&host, args),
        Command::Daemon(mut args) => {
            if let Err(e) =
                cli::daemon::fill_from_config(&mut args, sub("daemon"), settings.daemon())
            {
                return cli::usage(e);
            }
            cli::daemon::run(host, *args)
        }
        Command::Jobs(mut args) => {
            // `rewind jobs` reads the state directory the daemon writes.
            if args.state.is_none() {
                args.state = settings.daemon().state;
            }
            cli::jobs::run(args)
        }
        Command::Stdlib { action } => cli::stdlib::run(action),
        Command::Key { action } => cli::key::run(action),
        Command::Admin { action } => cli::admin::run(action),
        Command::Completions(args) => cli::completions::run(args),
        Command::Man(args) => cli::man::run(&host, args),
        Command::Config(args) => cli::config::run(&settings, args),
    }
}
