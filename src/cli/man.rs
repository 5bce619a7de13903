//! `rewind man [NAME] [--dir DIR]`: man pages rendered by clap_mangen: rewind(1), one page per subcommand
//! (rewind-run(1), rewind-stdlib-export(1), ...) and one per procedure (rewind-run-backup-dir(1)), for
//! which a `clap::Command` is built from the script's declared params: each param is a `NAME=TYPE`
//! argument with its doc, type, default, choices, environment variable and secrecy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::{Arg, Command, CommandFactory};
use clap_complete::engine::ArgValueCompleter;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use serde_json::Value as Json;

use rewind::host::Host;
use rewind::host::params::{ParamSpec, ParamType};
use rewind::host::script::Script;
use rewind::host::search::{Origin, close_names};

use super::{Cli, failed, load_script_quietly, report_load_error, runtime, usage};

#[derive(clap::Args)]
pub struct Args {
    /// A subcommand (`run`, `stdlib-export`) or a script (`backup-dir`, a .lua file); without it, rewind(1).
    #[arg(value_name = "NAME", add = ArgValueCompleter::new(super::completions::pages))]
    name: Option<String>,
    /// Write every page into DIR instead: rewind.1, rewind-SUB.1 for each subcommand and
    /// rewind-run-SCRIPT.1 for each script on the search path.
    #[arg(long, value_name = "DIR", conflicts_with = "name", value_hint = clap::ValueHint::DirPath)]
    dir: Option<PathBuf>,
}

pub fn run(host: &Host, args: Args) -> ExitCode {
    let rt = runtime();
    if let Some(dir) = args.dir {
        return write_all(host, &rt, &dir);
    }
    let page = match args.name {
        None => root_page(&loaded_scripts(host, &rt).0),
        Some(name) => match named_page(host, &rt, &name) {
            Ok(p) => p,
            Err(code) => return code,
        },
    };
    // A closed pipe (`rewind man | head`) is not an error worth reporting.
    let _ = std::io::stdout().write_all(&page);
    ExitCode::SUCCESS
}

/// rewind and every visible subcommand, by page name: `rewind`, `rewind-run`, `rewind-stdlib-export`, ...
pub fn command_pages() -> Vec<(String, Command)> {
    fn walk(cmd: &Command, out: &mut Vec<(String, Command)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let page = sub.get_display_name().unwrap_or(sub.get_name()).to_string();
            out.push((page, sub.clone()));
            walk(sub, out);
        }
    }
    let mut root = Cli::command();
    root.build();
    let mut out = vec![("rewind".to_string(), root.clone())];
    walk(&root, &mut out);
    out
}

/// The page for `NAME`: a subcommand (`run`, `rewind-run`) or a script (`backup-dir`,
/// `rewind-run-backup-dir`, a path to a .lua file).
fn named_page(host: &Host, rt: &tokio::runtime::Runtime, name: &str) -> Result<Vec<u8>, ExitCode> {
    let pages = command_pages();
    let full = format!("rewind-{name}");
    if let Some((page, cmd)) = pages.iter().find(|(p, _)| *p == name || *p == full) {
        return Ok(match page.as_str() {
            "rewind" => root_page(&loaded_scripts(host, rt).0),
            "rewind-run" => command_page(cmd.clone(), &loaded_scripts(host, rt).0),
            _ => command_page(cmd.clone(), &[]),
        });
    }
    let script = name.strip_prefix("rewind-run-").unwrap_or(name);
    let Some(source) = host.search.find_script(script) else {
        let scripts = host.search.list_scripts();
        let names = pages
            .iter()
            .filter_map(|(p, _)| p.strip_prefix("rewind-"))
            .chain(scripts.iter().map(|(n, _, _)| n.as_str()));
        let close = close_names(name, names);
        let hint = if close.is_empty() {
            String::new()
        } else {
            format!("; did you mean: {}?", close.join(", "))
        };
        let commands: Vec<&str> = pages
            .iter()
            .filter_map(|(p, _)| p.strip_prefix("rewind-"))
            .collect();
        return Err(usage(format!(
            "no man page named '{name}': it is neither a rewind command ({}) nor a script in the search \
             path ({}){hint}",
            commands.join(", "),
            host.search.describe()
        )));
    };
    match load_script_quietly(host, rt, &source, false) {
        Ok(s) => Ok(procedure_page(&s)),
        Err(e) => Err(report_load_error(&e)),
    }
}

/// `--dir DIR`: every page. A user script that does not load is skipped with a warning.
fn write_all(host: &Host, rt: &tokio::runtime::Runtime, dir: &Path) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return failed(format!("cannot create {}: {e}", dir.display()));
    }
    let (scripts, broken) = loaded_scripts(host, rt);
    for (name, e) in &broken {
        eprintln!("warning: no page for script '{name}', it does not load: {e}");
    }
    let mut pages: Vec<(String, Vec<u8>)> = command_pages()
        .into_iter()
        .map(|(page, cmd)| {
            let text = match page.as_str() {
                "rewind" => root_page(&scripts),
                "rewind-run" => command_page(cmd, &scripts),
                _ => command_page(cmd, &[]),
            };
            (page, text)
        })
        .collect();
    pages.extend(
        scripts
            .iter()
            .map(|s| (format!("rewind-run-{}", s.source.name), procedure_page(s))),
    );
    for (page, text) in &pages {
        let path = dir.join(format!("{page}.1"));
        if let Err(e) = std::fs::write(&path, text) {
            return failed(format!("cannot write {}: {e}", path.display()));
        }
    }
    println!("wrote {} man pages to {}", pages.len(), dir.display());
    ExitCode::SUCCESS
}

/// Every script on the search path, loaded (never run); the ones that do not load, with the error.
fn loaded_scripts(
    host: &Host,
    rt: &tokio::runtime::Runtime,
) -> (Vec<Script>, Vec<(String, String)>) {
    let mut ok = Vec::new();
    let mut broken = Vec::new();
    for (name, _, _) in host.search.list_scripts() {
        let Some(source) = host.search.find_script(&name) else {
            continue;
        };
        match load_script_quietly(host, rt, &source, false) {
            Ok(s) => ok.push(s),
            Err(e) => broken.push((name, rewind::base::errors::Report::from_lua(&e).message)),
        }
    }
    (ok, broken)
}

fn render(cmd: Command, extra: &Roff) -> Vec<u8> {
    let mut out = Vec::new();
    let version = env!("CARGO_PKG_VERSION");
    let man = Man::new(cmd)
        .date(date())
        .source(format!("rewind {version}"))
        .manual("rewind manual");
    man.render(&mut out).expect("rendering into memory");
    // Both renders start with the same preamble (the apostrophe string): keep the first.
    let preamble = Roff::new().render();
    let extra = extra.render();
    out.extend_from_slice(extra.strip_prefix(&preamble).unwrap_or(&extra).as_bytes());
    out
}

/// The pages' date: SOURCE_DATE_EPOCH when set (reproducible package builds), else today. (An empty date
/// would shift the footer: groff reads the source as the date.)
fn date() -> String {
    let now = chrono::Utc::now();
    let at = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or(now);
    at.format("%Y-%m-%d").to_string()
}

fn root_page(scripts: &[Script]) -> Vec<u8> {
    let mut extra = Roff::new();
    procedures_section(&mut extra, scripts);
    extra.control("SH", ["ENVIRONMENT"]);
    for (var, what) in [
        (
            "REWIND_PATH",
            "Directories searched for scripts and modules after --path, colon-separated.",
        ),
        (
            "REWIND_STORE",
            "The default store of the bundled procedures (before the config file's store; default ~/.local/share/rewind/store).",
        ),
        (
            "REWIND_LOG",
            "A tracing filter for the logs on stderr, e.g. debug,http=trace.",
        ),
        (
            "REWIND_CONFIG",
            "The config file, as --config; empty for none.",
        ),
        ("REWIND_LOG_FORMAT", "As --log-format."),
        ("REWIND_VERBOSE", "As -v: a count (2 is -vv) or true/false."),
        ("REWIND_QUIET", "As -q: true or false."),
        ("REWIND_JSON", "As --json of run, test, jobs and config."),
        (
            "REWIND_DAEMON_*",
            "The daemon's flags (REWIND_DAEMON_STATE is also jobs --state's); see rewind-daemon(1).",
        ),
    ] {
        extra
            .control("TP", [])
            .text([bold(var)])
            .text([roman(what)]);
    }
    extra.control("SH", ["FILES"]);
    extra
        .control("TP", [])
        .text([bold("$XDG_CONFIG_HOME/rewind/config.yaml")])
        .text([roman(
            "Defaults (else ~/.config/rewind/config.yaml): store, log_format, path, verbose, quiet, daemon. \
A flag beats its variable, which beats the file. rewind config shows every setting and where it came from.",
        )]);
    let cmd = command_pages().swap_remove(0).1;
    render(cmd, &extra)
}

fn command_page(cmd: Command, scripts: &[Script]) -> Vec<u8> {
    let mut extra = Roff::new();
    procedures_section(&mut extra, scripts);
    extra
        .control("SH", ["SEE ALSO"])
        .text([bold("rewind"), roman("(1)")]);
    render(cmd, &extra)
}

fn procedures_section(roff: &mut Roff, scripts: &[Script]) {
    if scripts.is_empty() {
        return;
    }
    roff.control("SH", ["PROCEDURES"]);
    roff.text([roman(
        "Scripts on the search path; each has a page of its params, and rewind help NAME shows them too.",
    )]);
    for s in scripts {
        roff.control("TP", [])
            .text([bold(format!("rewind-run-{}", s.source.name)), roman("(1)")])
            .text([roman(s.description.lines().next().unwrap_or(""))]);
    }
}

fn procedure_page(s: &Script) -> Vec<u8> {
    let name = &s.source.name;
    let mut extra = Roff::new();
    let example: String = s
        .params
        .iter()
        .filter(|p| p.required)
        .map(|p| format!(" {}=...", p.name))
        .collect();
    extra
        .control("SH", ["EXAMPLE"])
        .text([bold(format!("rewind run {name}")), roman(example)])
        .control("SH", ["SEE ALSO"])
        .text([
            bold("rewind-run"),
            roman("(1), "),
            bold("rewind"),
            roman("(1), "),
            bold(format!("rewind help {name}")),
        ]);
    render(procedure_command(s), &extra)
}

/// A procedure as a command: its params (required ones first) under PARAMS, `rewind run`'s own options
/// under OPTIONS.
fn procedure_command(s: &Script) -> Command {
    let name = &s.source.name;
    let description = s.description.trim();
    let origin = match &s.source.origin {
        Origin::Bundled => {
            "Bundled with rewind; rewind stdlib export DIR copies it for editing.".to_string()
        }
        Origin::File(p) => format!("From {}.", p.display()),
    };
    let mut cmd = Command::new(format!("rewind-run-{name}"))
        .bin_name(format!("rewind run {name}"))
        .about(description.lines().next().unwrap_or("").to_string())
        .long_about(format!(
            "{description}\n\nParams are given as NAME=VALUE. {origin}"
        ))
        .disable_help_flag(true)
        .disable_version_flag(true);
    let mut specs: Vec<&ParamSpec> = s.params.iter().collect();
    specs.sort_by_key(|p| !p.required);
    for p in specs {
        cmd = cmd.arg(param_arg(p));
    }
    if let Some(run) = Cli::command().find_subcommand("run") {
        for a in run.get_arguments().filter(|a| !a.is_positional()) {
            cmd = cmd.arg(a.clone().help_heading("Options"));
        }
    }
    cmd
}

fn param_arg(p: &ParamSpec) -> Arg {
    let mut help = p.doc.split_whitespace().collect::<Vec<_>>().join(" ");
    if !help.is_empty() && !help.ends_with(['.', '!', '?']) {
        help.push('.');
    }
    let mut facts = vec![format!("Type: {}.", type_text(p.ty))];
    if p.required {
        facts.push("Required.".into());
    }
    if p.secret {
        facts.push("Secret: redacted from logs, results and errors.".into());
    }
    if !p.aliases.is_empty() {
        facts.push(format!("Also accepted as: {}.", p.aliases.join(", ")));
    }
    let default = p.default.as_ref().map(default_text);
    let native_choices = !p.choices.is_empty()
        && default.as_ref().is_none_or(|d| p.choices.contains(d))
        && !p.required;
    if !p.choices.is_empty() && !native_choices {
        facts.push(format!("One of: {}.", p.choices.join(", ")));
    }
    let mut arg = Arg::new(format!("param:{}", p.name))
        .value_name(format!("{}={}", p.name, p.ty.name().to_uppercase()))
        .required(p.required)
        .help_heading("Params")
        .help(format!("{help} {}", facts.join(" ")).trim().to_string());
    if let Some(d) = default
        && !p.required
    {
        arg = arg.default_value(d).hide_default_value(p.secret);
    }
    if let Some(env) = &p.env {
        arg = arg.env(env.clone()).hide_env_values(true);
    }
    if native_choices {
        arg = arg.value_parser(PossibleValuesParser::new(p.choices.clone()));
    }
    arg
}

fn type_text(ty: ParamType) -> &'static str {
    match ty {
        ParamType::String => "string",
        ParamType::Number => "number",
        ParamType::Integer => "integer",
        ParamType::Boolean => "boolean (true or false)",
        ParamType::Duration => "duration (90s, 10m, 2h, 60d; the script gets seconds)",
        ParamType::Date => "date (2019-12-01)",
        ParamType::List => "list (a,b,c on the command line)",
        ParamType::Table => "table (a mapping, from a params file)",
    }
}

fn default_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Array(items) => items.iter().map(default_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
