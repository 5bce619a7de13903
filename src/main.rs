//! The `rewind` command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value as Json};

use rewind::host::runner::{self, Outcome, RunRequest};
use rewind::host::search::{SearchPath, close_names};
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
struct Cli {
    /// A directory to search for scripts (DIR/scripts/NAME.lua) and modules (DIR/stdlib/...), before REWIND_PATH.
    #[arg(long = "path", global = true, value_name = "DIR")]
    paths: Vec<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors; no progress.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a script by name (see `rewind list`) or path, with params as key=value.
    Run {
        /// Script name or path to a .lua file.
        script: String,
        /// Params as key=value (see `rewind help SCRIPT`).
        #[arg(value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Read params from a YAML or JSON file; key=value on the command line wins.
        #[arg(long, visible_alias = "params", value_name = "FILE")]
        params_file: Option<PathBuf>,
        /// Read secrets (KEY=VALUE lines, or YAML/JSON) into the environment before running; redacted everywhere.
        #[arg(long, value_name = "FILE")]
        secrets: Option<PathBuf>,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List the scripts reachable by name and where each comes from.
    List {
        /// List the modules `require` can load instead.
        #[arg(long)]
        modules: bool,
    },
    /// Show a script's description and params; without a name, this help.
    Help { script: Option<String> },
    /// Compile a script and check its declared params; runs nothing.
    Check {
        script: String,
        /// Also check these params (key=value) against the declaration.
        #[arg(value_name = "KEY=VALUE")]
        params: Vec<String>,
    },
    /// Run Lua tests (*_test.lua files); prints "N passed, N failed".
    Test {
        /// Test files or directories (default: tests/lua).
        paths: Vec<PathBuf>,
        /// Only cases whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Run jobs on schedules, reload them on edits, record runs (see README "Daemon").
    Daemon(rewind::daemon::DaemonArgs),
    /// List the daemon's jobs; `jobs run NAME`, `jobs log RUN_ID`, `jobs runs`.
    Jobs(rewind::daemon::JobsArgs),
    /// Work with the bundled standard library.
    Stdlib {
        #[command(subcommand)]
        action: StdlibAction,
    },
}

#[derive(Subcommand)]
enum StdlibAction {
    /// Copy the bundled scripts/ and stdlib/ to DIR for editing; use it with --path DIR or REWIND_PATH.
    Export {
        dir: PathBuf,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = if cli.quiet {
        "warn"
    } else {
        ["info", "debug", "trace"][cli.verbose.min(2) as usize]
    };
    // rdkafka's BaseConsumer logs an ERROR on drop when `c:close()` already closed its queue (every
    // topic-archive run); client errors reach rewind through its own context instead, so that module
    // stays quiet.
    let filter = EnvFilter::try_from_env("REWIND_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("{level},aws_config=warn,aws_smithy_runtime=warn,rdkafka=warn,rdkafka::consumer::base_consumer=off,hyper=warn,h2=warn,reqwest=warn,rustls=warn,mio=info,tokio=info,runtime=info,want=info,tokio_util=info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingWriter::default);
    // RunLogLayer copies the events of each daemon run into that run's log file.
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let runs = rewind::daemon::history::RunLogLayer;
    match cli.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(runs)
            .init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .compact()
            .finish()
            .with(runs)
            .init(),
    }
    let bar = std::io::stderr().is_terminal() && matches!(cli.log_format, LogFormat::Human);
    rewind::progress::set_mode(bar, cli.quiet);
}

/// Writes log lines to stderr with every registered secret masked.
#[derive(Default)]
struct RedactingWriter {
    buf: Vec<u8>,
}

impl Write for RedactingWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let text = rewind::redact::redact(&String::from_utf8_lossy(&self.buf));
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

fn split_params(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    raw.iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("params are key=value; '{p}' has no '='")),
        })
        .collect()
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

fn usage(msg: impl AsRef<str>) -> ExitCode {
    eprintln!("error: {}", rewind::redact::redact(msg.as_ref()));
    ExitCode::from(2)
}

fn not_found(search: &SearchPath, name: &str) -> ExitCode {
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

fn print_result(result: &Json, json: bool) {
    let mut result = result.clone();
    rewind::redact::redact_json(&mut result);
    let result = &result;
    let text = if json {
        serde_json::to_string_pretty(result).unwrap_or_default()
    } else {
        match result {
            Json::Null => return,
            Json::String(s) => s.clone(),
            other => serde_norway::to_string(other)
                .unwrap_or_default()
                .trim_end()
                .to_string(),
        }
    };
    println!("{}", rewind::redact::redact(&text));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli);
    let search = SearchPath::new(&cli.paths);
    let host = Host::new(search.clone());
    match cli.command {
        Command::Run {
            script,
            params,
            params_file,
            secrets,
            json,
        } => {
            let cli_params = match split_params(&params) {
                Ok(p) => p,
                Err(e) => return usage(e),
            };
            if let Some(path) = secrets {
                match rewind::env::read_secrets(&path.display().to_string()) {
                    // SAFETY: set before any other thread reads the environment (the runtime starts below).
                    Ok(values) => values
                        .into_iter()
                        .for_each(|(k, v)| unsafe { std::env::set_var(k, v) }),
                    Err(e) => return usage(format!("{e:#}")),
                }
            }
            let file_params = match params_file.as_ref().map(read_params_file).transpose() {
                Ok(p) => p,
                Err(e) => return usage(e),
            };
            let Some(source) = search.find_script(&script) else {
                return not_found(&search, &script);
            };
            let rt = runtime();
            let local = tokio::task::LocalSet::new();
            let outcome = local.block_on(
                &rt,
                runner::run(
                    &host,
                    RunRequest {
                        source,
                        cli_params,
                        file_params,
                    },
                    runner::shutdown_signal(),
                ),
            );
            let code = outcome.exit_code();
            match outcome {
                Outcome::Done(result) => print_result(&result, json),
                Outcome::Usage(msg) => return usage(msg),
                Outcome::Failed(report) => eprintln!("error: {}", report.render(true)),
                Outcome::Cancelled => {
                    eprintln!("error: {script} was cancelled by a signal")
                }
            }
            // Dropped writers abort their uploads in the background: let that finish before exiting.
            rt.block_on(rewind::stream::wait_cleanups(
                std::time::Duration::from_secs(30),
            ));
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
            ExitCode::from(code as u8)
        }
        Command::List { modules } => {
            if modules {
                for (name, _) in host::modules::RUST_MODULES {
                    // A user file found before the Rust module shadows it.
                    let shadow = matches!(
                        search.find_module(name),
                        Some(host::search::ModuleSource::Lua { .. })
                    );
                    println!(
                        "{name:<24} rust{}",
                        if shadow {
                            " (shadowed by a user file)"
                        } else {
                            ""
                        }
                    );
                }
                for name in SearchPath::bundled_lua_modules() {
                    let origin = match search.find_module(&name) {
                        Some(host::search::ModuleSource::Lua { path: Some(p), .. }) => {
                            format!("{} (shadows bundled)", p.display())
                        }
                        _ => "bundled".into(),
                    };
                    println!("{name:<24} lua {origin}");
                }
                return ExitCode::SUCCESS;
            }
            let rt = runtime();
            for (name, origin, shadows) in search.list_scripts() {
                let desc = describe(&host, &rt, &name);
                let origin = if shadows {
                    format!("{origin} (shadows bundled)")
                } else {
                    origin.to_string()
                };
                println!("{name:<20} {desc}  [{origin}]");
            }
            ExitCode::SUCCESS
        }
        Command::Help { script: None } => {
            use clap::CommandFactory;
            let _ = Cli::command().print_long_help();
            ExitCode::SUCCESS
        }
        Command::Help { script: Some(name) } => {
            let Some(source) = search.find_script(&name) else {
                return not_found(&search, &name);
            };
            let rt = runtime();
            let _g = rt.enter();
            let lua = match host.new_state() {
                Ok(l) => l,
                Err(e) => return usage(e.to_string()),
            };
            match load_in_local_set(&rt, &lua, &source) {
                Ok(s) => {
                    print!("{}", help_text(&s));
                    ExitCode::SUCCESS
                }
                Err(e) => report_load_error(&e),
            }
        }
        Command::Check { script, params } => {
            let Some(source) = search.find_script(&script) else {
                return not_found(&search, &script);
            };
            let cli_params = match split_params(&params) {
                Ok(p) => p,
                Err(e) => return usage(e),
            };
            let rt = runtime();
            let _g = rt.enter();
            let lua = match host.new_state() {
                Ok(l) => l,
                Err(e) => return usage(e.to_string()),
            };
            match load_in_local_set(&rt, &lua, &source) {
                Ok(s) => {
                    if !cli_params.is_empty()
                        && let Err(errs) =
                            host::params::resolve(&s.params, &cli_params, None, &|k| {
                                std::env::var(k).ok()
                            })
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
                Err(e) => report_load_error(&e),
            }
        }
        Command::Test { paths, filter } => {
            let paths = if paths.is_empty() {
                vec![PathBuf::from("tests/lua")]
            } else {
                paths
            };
            let files = match host::testing::discover(&paths) {
                Ok(f) => f,
                Err(e) => return usage(format!("{e:#}")),
            };
            let rt = runtime();
            let local = tokio::task::LocalSet::new();
            let s = local.block_on(
                &rt,
                host::testing::run_files(&host, &files, filter.as_deref()),
            );
            println!("{} passed, {} failed", s.passed, s.failed);
            if s.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Daemon(args) => rewind::daemon::daemon_main(host, args),
        Command::Jobs(args) => rewind::daemon::jobs_main(args),
        Command::Stdlib {
            action: StdlibAction::Export { dir, force },
        } => match host::search::export(&dir, force) {
            Ok(files) => {
                println!(
                    "exported {} files to {}; use them with --path {} or REWIND_PATH",
                    files.len(),
                    dir.display(),
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) if e.downcast_ref::<host::UsageError>().is_some() => usage(format!("{e:#}")),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// Loads a script outside `rewind run` (help, check, list). Its top-level code may call `task.spawn`,
/// which needs a LocalSet.
fn load_in_local_set(
    rt: &tokio::runtime::Runtime,
    lua: &mlua::Lua,
    source: &host::search::ScriptSource,
) -> mlua::Result<host::script::Script> {
    tokio::task::LocalSet::new().block_on(rt, async { host::script::load(lua, source) })
}

fn report_load_error(e: &mlua::Error) -> ExitCode {
    let r = host::errors::Report::from_lua(e);
    // A script that does not compile or has a bad declaration is bad input: exit 2.
    usage(r.render(!r.usage))
}

fn describe(host: &Host, rt: &tokio::runtime::Runtime, name: &str) -> String {
    let _g = rt.enter();
    let Some(source) = host.search.find_script(name) else {
        return String::new();
    };
    let Ok(lua) = host.new_state() else {
        return String::new();
    };
    match load_in_local_set(rt, &lua, &source) {
        Ok(s) => s.description.lines().next().unwrap_or("").to_string(),
        Err(_) => "(does not load: see `rewind check`)".into(),
    }
}

fn help_text(s: &host::script::Script) -> String {
    let mut out = format!(
        "{} [{}]\n\n{}\n",
        s.source.name,
        s.source.origin,
        s.description.trim()
    );
    if s.params.is_empty() {
        out.push_str("\nNo params.\n");
        return out;
    }
    out.push_str("\nParams:\n");
    for p in &s.params {
        let mut flags = vec![p.ty.name().to_string()];
        if p.required {
            flags.push("required".into());
        }
        if let Some(d) = &p.default {
            flags.push(if p.secret {
                "default: ***".into()
            } else {
                format!("default: {d}")
            });
        }
        if p.secret {
            flags.push("secret".into());
        }
        if let Some(e) = &p.env {
            flags.push(format!("env: {e}"));
        }
        if !p.choices.is_empty() {
            flags.push(format!("one of: {}", p.choices.join(", ")));
        }
        out.push_str(&format!("  {:<22} {}\n", p.name, flags.join(", ")));
        for line in p.doc.lines() {
            out.push_str(&format!("  {:<22}   {}\n", "", line));
        }
    }
    out.push_str(&format!(
        "\nExample: rewind run {}{}\n",
        s.source.name,
        s.params
            .iter()
            .filter(|p| p.required)
            .map(|p| format!(" {}=...", p.name))
            .collect::<String>()
    ));
    out
}
