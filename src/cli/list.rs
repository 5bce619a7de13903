//! `rewind list [--modules]`: the scripts (or modules) reachable by name and where each comes from.

use std::process::ExitCode;

use rewind::host::search::{ModuleSource, SearchPath};
use rewind::host::{Host, modules::RUST_MODULES};

use super::{load_script, runtime};

#[derive(clap::Args)]
pub struct Args {
    /// List the modules `require` can load instead.
    #[arg(long)]
    modules: bool,
}

pub fn run(host: &Host, args: Args) -> ExitCode {
    let search = &host.search;
    if args.modules {
        for (name, _) in RUST_MODULES {
            // A user file found before the Rust module shadows it.
            let shadow = matches!(search.find_module(name), Some(ModuleSource::Lua { .. }));
            let note = if shadow {
                " (shadowed by a user file)"
            } else {
                ""
            };
            println!("{name:<24} rust{note}");
        }
        for name in SearchPath::bundled_lua_modules() {
            let origin = match search.find_module(&name) {
                Some(ModuleSource::Lua { path: Some(p), .. }) => {
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
        let desc = describe(host, &rt, &name);
        let origin = if shadows {
            format!("{origin} (shadows bundled)")
        } else {
            origin.to_string()
        };
        println!("{name:<20} {desc}  [{origin}]");
    }
    ExitCode::SUCCESS
}

/// The first line of a script's description, or a hint when it does not load.
fn describe(host: &Host, rt: &tokio::runtime::Runtime, name: &str) -> String {
    let Some(source) = host.search.find_script(name) else {
        return String::new();
    };
    match load_script(host, rt, &source) {
        Ok(s) => s.description.lines().next().unwrap_or("").to_string(),
        Err(_) => "(does not load: see `rewind check`)".into(),
    }
}
