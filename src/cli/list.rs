//! `rewind list [--modules] [--json]`: the scripts (or modules) reachable by name and where each comes from.

use std::process::ExitCode;

use serde_json::json;

use rewind::host::search::{ModuleSource, SearchPath};
use rewind::host::{Host, modules::RUST_MODULES};

use super::{load_script, runtime};

#[derive(clap::Args)]
pub struct Args {
    /// List the modules `require` can load instead.
    #[arg(long)]
    modules: bool,
    /// Print JSON: {"scripts": [{"name", "description", "origin", "shadows_bundled", "loads"}]}, or with
    /// --modules {"modules": [{"name", "kind": "rust"|"lua", "origin", "shadowed"}]}.
    #[arg(long, env = "REWIND_JSON", value_parser = super::env_bool)]
    json: bool,
}

pub fn run(host: &Host, args: Args) -> ExitCode {
    let search = &host.search;
    if args.modules {
        let mut rows = Vec::new();
        for (name, _) in RUST_MODULES {
            // A user file found before the Rust module shadows it.
            let shadowed = matches!(search.find_module(name), Some(ModuleSource::Lua { .. }));
            rows.push(
                json!({"name": name, "kind": "rust", "origin": "rust", "shadowed": shadowed}),
            );
        }
        for name in SearchPath::bundled_lua_modules() {
            let (origin, shadowed) = match search.find_module(&name) {
                Some(ModuleSource::Lua { path: Some(p), .. }) => (p.display().to_string(), true),
                _ => ("bundled".to_string(), false),
            };
            rows.push(json!({"name": name, "kind": "lua", "origin": origin, "shadowed": shadowed}));
        }
        if args.json {
            return print_json(json!({ "modules": rows }));
        }
        for r in &rows {
            let (name, kind, origin) =
                (r["name"].as_str(), r["kind"].as_str(), r["origin"].as_str());
            let (name, kind, origin) =
                (name.unwrap_or(""), kind.unwrap_or(""), origin.unwrap_or(""));
            let shadowed = r["shadowed"] == true;
            match (kind, shadowed) {
                ("rust", true) => println!("{name:<24} rust (shadowed by a user file)"),
                ("rust", false) => println!("{name:<24} rust"),
                (_, true) => println!("{name:<24} lua {origin} (shadows bundled)"),
                _ => println!("{name:<24} lua {origin}"),
            }
        }
        return ExitCode::SUCCESS;
    }
    let rt = runtime();
    let mut rows = Vec::new();
    for (name, origin, shadows) in search.list_scripts() {
        let desc = describe(host, &rt, &name);
        if !args.json {
            let origin = if shadows {
                format!("{origin} (shadows bundled)")
            } else {
                origin.to_string()
            };
            let text = desc
                .as_deref()
                .unwrap_or("(does not load: see `rewind check`)");
            println!("{name:<20} {text}  [{origin}]");
            continue;
        }
        rows.push(json!({
            "name": name,
            "description": desc.as_deref().unwrap_or(""),
            "origin": origin.to_string(),
            "shadows_bundled": shadows,
            "loads": desc.is_some(),
        }));
    }
    if args.json {
        return print_json(json!({ "scripts": rows }));
    }
    ExitCode::SUCCESS
}

pub fn print_json(v: serde_json::Value) -> ExitCode {
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    ExitCode::SUCCESS
}

/// The first line of a script's description; `None` when it does not load.
fn describe(host: &Host, rt: &tokio::runtime::Runtime, name: &str) -> Option<String> {
    let Some(source) = host.search.find_script(name) else {
        return Some(String::new());
    };
    load_script(host, rt, &source)
        .ok()
        .map(|s| s.description.lines().next().unwrap_or("").to_string())
}
