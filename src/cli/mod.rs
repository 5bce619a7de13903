//! The `rewind` command line: the argument definitions here, one file per command beside them.
//! Commands reach the daemon, the host and the primitives through the library; nothing below imports this.

pub mod admin;
pub mod check;
pub mod completions;
pub mod config;
pub mod daemon;
pub mod help;
pub mod jobs;
pub mod key;
pub mod list;
pub mod logging;
pub mod man;
pub mod run;
pub mod settings;
pub mod stdlib;
pub mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use rewind::base::redact::redact;
use rewind::host::search::{ScriptSource, SearchPath, close_names};
use rewind::host::{self, Host};

#[derive(Parser)]
#[command(
    name = "rewind",
    version,
    about = "Back up, restore, replay and prune what data platforms hold, with Lua procedures",
    long_about = "rewind runs backup, restore, replay and retention procedures written in Lua on top of fast Rust \
primitives (object storage, tar, hashing, Kafka, HTTP, subprocesses).\n\nScripts and modules resolve through the \
search path: --path DIR (repeatable), then REWIND_PATH (colon-separated), then the copies built into the binary. \
A user file shadows the bundled one of the same name; `rewind stdlib export DIR` copies the bundled ones for editing.\n\n\
Exit codes: 0 done, 1 the job failed, 2 bad usage or params.",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// A directory to search for scripts (DIR/scripts/NAME.lua) and modules (DIR/stdlib/...), before
    /// REWIND_PATH (colon-separated) and the config file's `path`.
    #[arg(long = "path", global = true, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub paths: Vec<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, env = "REWIND_LOG_FORMAT", default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// More log output (-v debug, -vv trace); the variable takes a count or true/false.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, env = "REWIND_VERBOSE", value_parser = verbosity)]
    pub verbose: u8,
    /// Only warnings and errors; no progress.
    #[arg(short, long, global = true, env = "REWIND_QUIET", value_parser = env_bool)]
    pub quiet: bool,
    /// The config file (default $XDG_CONFIG_HOME/rewind/config.yaml, else ~/.config/rewind/config.yaml);
    /// `none` (or an empty REWIND_CONFIG) reads none.
    // A String, not a PathBuf: clap refuses an empty PathBuf, and an empty REWIND_CONFIG means "none".
    #[arg(long, global = true, env = "REWIND_CONFIG", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub config: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// A boolean flag's value from its variable: true/false, 1/0, yes/no, on/off; empty is false.
pub fn env_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        "" | "0" | "false" | "no" | "off" | "n" | "f" => Ok(false),
        _ => Err("expected true or false (1/0, yes/no, on/off)".into()),
    }
}

/// `-v`'s count, or REWIND_VERBOSE: a count (2 is -vv) or true/false.
fn verbosity(s: &str) -> Result<u8, String> {
    match s.trim().parse::<u8>() {
        Ok(n) => Ok(n),
        Err(_) => env_bool(s)
            .map(u8::from)
            .map_err(|_| "expected a count (0, 1, 2) or true/false".into()),
    }
}

/// A flag's bad value that came from its environment variable: clap names the flag only, so say
/// which variable to fix.
pub fn env_note(e: &clap::Error) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split([' ', '=']).next()?;
    let cmd = Cli::command();
    let a = every_arg(&cmd)
        .find(|a| a.get_long().map(|l| format!("--{l}")).as_deref() == Some(flag))?;
    let var = a.get_env()?;
    let given = std::env::args().skip(1).any(|w| {
        w == flag
            || w.starts_with(&format!("{flag}="))
            || a.get_short()
                .is_some_and(|s| w.starts_with('-') && !w.starts_with("--") && w.contains(s))
    });
    (!given && std::env::var_os(var).is_some())
        .then(|| format!("the value of {flag} came from {}", var.to_string_lossy()))
}

/// Every argument of a command and of its subcommands, at any depth.
pub fn every_arg(cmd: &clap::Command) -> impl Iterator<Item = &clap::Arg> {
    let mut cmds = vec![cmd];
    let mut all = Vec::new();
    while let Some(c) = cmds.pop() {
        all.extend(c.get_arguments());
        cmds.extend(c.get_subcommands());
    }
    all.into_iter()
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a script by name (see `rewind list`) or path, with params as key=value.
    Run(run::Args),
    /// List the scripts reachable by name and where each comes from.
    List(list::Args),
    /// Show a script's description and params; without a name, this help.
    Help(help::Args),
    /// Compile a script and check its declared params; runs nothing.
    Check(check::Args),
    /// Run Lua tests (*_test.lua files); prints "N passed, N failed".
    Test(test::Args),
    /// Run jobs on schedules, reload them on edits, record runs (see README "Daemon").
    Daemon(Box<daemon::Args>),
    /// List the daemon's jobs; `jobs run NAME`, `jobs log RUN_ID`, `jobs runs`.
    Jobs(jobs::Args),
    /// Admin page helpers: `admin hash-password` makes a users file's password_hash.
    Admin {
        #[command(subcommand)]
        action: admin::Action,
    },
    /// Age keys for encrypted stores: `key new FILE` (prints the public key), `key public FILE`.
    Key {
        #[command(subcommand)]
        action: key::Action,
    },
    /// Work with the bundled standard library.
    Stdlib {
        #[command(subcommand)]
        action: stdlib::Action,
    },
    /// Print the completion script for bash, zsh or fish (see README "Shell completions and man pages").
    Completions(completions::Args),
    /// Print a man page (rewind(1), a subcommand's, a procedure's), or write them all with --dir DIR.
    Man(man::Args),
    /// Print the effective settings and where each came from; `config path` prints the config file's path.
    Config(config::Args),
}

static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `-v` was given: errors show the Lua traceback (without it they keep their file:line only).
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Prints a usage error (bad input): exit code 2.
pub fn usage(msg: impl AsRef<str>) -> ExitCode {
    eprintln!("error: {}", redact(msg.as_ref()));
    ExitCode::from(2)
}

/// A failure of the job itself: exit code 1.
pub fn failed(msg: impl AsRef<str>) -> ExitCode {
    eprintln!("error: {}", redact(msg.as_ref()));
    ExitCode::from(1)
}

/// "no script named X", with the close names.
pub fn not_found(search: &SearchPath, name: &str) -> ExitCode {
    let all = search.list_scripts();
    let close = close_names(name, all.iter().map(|(n, _, _)| n.as_str()));
    let hint = if close.is_empty() {
        "; `rewind list` shows them all".to_string()
    } else {
        format!("; did you mean: {}?", close.join(", "))
    };
    usage(format!(
        "no script named '{name}' in the search path ({}){hint}",
        search.describe()
    ))
}

/// `key=value` arguments as pairs.
pub fn split_params(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    raw.iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("params are key=value; '{p}' has no '='")),
        })
        .collect()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Loads a script outside `rewind run` (help, check, list). Its top-level code may call `task.spawn`,
/// which needs a LocalSet.
pub fn load_script(
    host: &Host,
    rt: &tokio::runtime::Runtime,
    source: &ScriptSource,
) -> mlua::Result<host::script::Script> {
    let _g = rt.enter();
    let lua = host.new_state()?;
    tokio::task::LocalSet::new().block_on(rt, async { host::script::load(&lua, source) })
}

/// `load_script` with the script's own output silenced: what its top-level code prints would mix into a
/// man page or a completion answer on stdout (and, with `stderr`, into the line being edited).
pub fn load_script_quietly(
    host: &Host,
    rt: &tokio::runtime::Runtime,
    source: &ScriptSource,
    stderr: bool,
) -> mlua::Result<host::script::Script> {
    let _mute = Mute::new(if stderr { &[1, 2] } else { &[1] });
    load_script(host, rt, source)
}

/// Points standard descriptors at /dev/null until dropped.
struct Mute(Vec<(i32, i32)>);

impl Mute {
    fn new(fds: &[i32]) -> Mute {
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
            return Mute(Vec::new());
        };
        let mut saved = Vec::new();
        for &fd in fds {
            // SAFETY: dup/dup2 on the process's own standard descriptors; put back when dropped.
            let copy = unsafe { libc::dup(fd) };
            if copy >= 0 && unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) } >= 0 {
                saved.push((fd, copy));
            } else if copy >= 0 {
                unsafe { libc::close(copy) };
            }
        }
        Mute(saved)
    }
}

impl Drop for Mute {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(&mut std::io::stdout());
        // SAFETY: flushes C stdio (Lua's print) into /dev/null, then restores the saved descriptors.
        unsafe {
            libc::fflush(std::ptr::null_mut());
            for &(fd, copy) in &self.0 {
                libc::dup2(copy, fd);
                libc::close(copy);
            }
        }
    }
}

/// A script that does not compile or has a bad declaration is bad input: exit 2.
pub fn report_load_error(e: &mlua::Error) -> ExitCode {
    let r = rewind::base::errors::Report::from_lua(e);
    usage(r.render(!r.usage && verbose()))
}
