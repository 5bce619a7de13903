//! `rewind config [--json]`: the effective settings and where each came from (flag, env REWIND_X, the
//! config file, default); `rewind config path`: the config file's path.

use std::process::ExitCode;

use serde_json::{Value as Json, json};

use super::settings::{Settings, Source};

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON: {"config_file": {"path", "source", "found"} or null, "settings": [{"name", "value", "source"}]}.
    #[arg(long, env = "REWIND_JSON", value_parser = super::env_bool)]
    json: bool,
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// Print the config file's path, whether or not it exists (nothing with --config none).
    Path,
}

/// `rewind config path` answers before the file is read: it must work when the file is broken.
pub fn wants_path(args: &Args) -> bool {
    matches!(args.action, Some(Action::Path))
}

pub fn print_path(cfg: &super::settings::ConfigRef) -> ExitCode {
    match &cfg.path {
        Some(p) => println!("{}", p.display()),
        None => eprintln!("no config file ({} says none)", cfg.source),
    }
    ExitCode::SUCCESS
}

struct Row {
    name: String,
    value: Json,
    source: String,
}

pub fn run(settings: &Settings, args: Args) -> ExitCode {
    let rows = rows(settings);
    let cfg = &settings.config;
    if args.json {
        let config_file = cfg.path.as_ref().map(|p| {
            json!({"path": p.display().to_string(), "source": cfg.source.to_string(), "found": cfg.found})
        });
        let settings: Vec<Json> = rows
            .iter()
            .map(|r| json!({"name": r.name, "value": r.value, "source": r.source}))
            .collect();
        let doc = json!({"config_file": config_file, "settings": settings});
        return out(serde_json::to_string_pretty(&doc).expect("JSON") + "\n");
    }
    let mut table = match &cfg.path {
        Some(p) => {
            let found = if cfg.found { "" } else { ", not found" };
            format!("config file  {}  ({}{found})\n", p.display(), cfg.source)
        }
        None => format!("config file  none  ({})\n", cfg.source),
    };
    let shown: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                text(&r.value, if r.name == "path" { ":" } else { "," }),
            )
        })
        .collect();
    let name_w = shown.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let value_w = shown
        .iter()
        .map(|(_, v)| v.chars().count())
        .max()
        .unwrap_or(0);
    for ((name, value), r) in shown.iter().zip(&rows) {
        table += &format!("{name:<name_w$}  {value:<value_w$}  ({})\n", r.source);
    }
    out(table)
}

/// Writes to stdout; a closed pipe (`rewind config | head`) is not an error.
fn out(text: String) -> ExitCode {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// A value as the table shows it: a list joined with `sep` (`:` for the search path, as REWIND_PATH
/// writes it; `,` else, since addresses hold colons), nothing as `-`.
fn text(v: &Json, sep: &str) -> String {
    match v {
        Json::Null => "-".into(),
        Json::String(s) => s.clone(),
        Json::Array(a) if a.is_empty() => "-".into(),
        Json::Array(a) => a.iter().map(|v| text(v, sep)).collect::<Vec<_>>().join(sep),
        other => other.to_string(),
    }
}

fn row(name: &str, value: Json, source: Source) -> Row {
    Row {
        name: name.into(),
        value,
        source: source.to_string(),
    }
}

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

fn rows(s: &Settings) -> Vec<Row> {
    use clap::ValueEnum;
    let format = s.log_format.0.to_possible_value().expect("a value");
    let mut rows = vec![
        row("store", json!(s.store.0), s.store.1.clone()),
        row(
            "log_format",
            json!(format.get_name()),
            s.log_format.1.clone(),
        ),
        row("verbose", json!(s.verbose.0), s.verbose.1.clone()),
        row("quiet", json!(s.quiet.0), s.quiet.1.clone()),
    ];
    // The search path mixes sources: one row, its sources in search order.
    let dirs: Vec<String> = s
        .paths
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    let mut sources: Vec<String> = Vec::new();
    for (_, src) in &s.paths {
        let t = src.to_string();
        if !sources.contains(&t) {
            sources.push(t);
        }
    }
    let mut path = row("path", json!(dirs), Source::Default);
    if !sources.is_empty() {
        path.source = sources.join(" + ");
    }
    rows.push(path);
    // Settings only the environment gives.
    rows.push(match env("REWIND_LOG") {
        Some(f) => row("log", json!(f), Source::Env("REWIND_LOG".into())),
        None => row("log", Json::Null, Source::Default),
    });
    rows.push(match env("REWIND_JSON") {
        Some(v) => row(
            "json",
            json!(super::env_bool(&v).unwrap_or(false)),
            Source::Env("REWIND_JSON".into()),
        ),
        None => row("json", json!(false), Source::Default),
    });
    rows.extend(daemon_rows(s));
    rows
}

/// `daemon.*`: every `rewind daemon` flag that has a variable, read as the daemon would.
fn daemon_rows(s: &Settings) -> Vec<Row> {
    use clap::CommandFactory;
    let file = serde_json::to_value(s.daemon()).unwrap_or(Json::Null);
    let cmd = super::Cli::command();
    let daemon = cmd.find_subcommand("daemon").expect("the daemon command");
    let mut rows = Vec::new();
    for arg in daemon.get_arguments() {
        let Some(var) = arg.get_env().map(|v| v.to_string_lossy().into_owned()) else {
            continue;
        };
        let id = arg.get_id().as_str();
        let name = format!("daemon.{id}");
        let multi = id == "allow";
        let r = if let Some(v) = env(&var) {
            let value = if multi {
                json!(v.split(',').collect::<Vec<_>>())
            } else {
                json!(v)
            };
            row(&name, value, Source::Env(var))
        } else if let Some(v) = file.get(id).filter(|v| !v.is_null()) {
            // Numbers as the flags take them: text, like every other daemon value here.
            let v = match v {
                Json::Number(n) => json!(n.to_string()),
                other => other.clone(),
            };
            row(&name, v, s.file_source())
        } else {
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect();
            let value = match (multi, defaults.first()) {
                (true, _) => json!(defaults),
                (false, Some(d)) => json!(d),
                (false, None) => Json::Null,
            };
            row(&name, value, Source::Default)
        };
        rows.push(r);
    }
    // The API token is a secret: whether it is set and where from, never its value.
    rows.push(match env("REWIND_DAEMON_TOKEN").filter(|t| !t.is_empty()) {
        Some(_) => row(
            "daemon.token",
            json!("***"),
            Source::Env("REWIND_DAEMON_TOKEN".into()),
        ),
        None => row("daemon.token", Json::Null, Source::Default),
    });
    rows
}
