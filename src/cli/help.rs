//! `rewind help [NAME]`: a script's description and params, or the command-line help.

use std::process::ExitCode;

use serde_json::json;

use rewind::host::Host;
use rewind::host::script::Script;

use super::{load_script, not_found, report_load_error, runtime};

#[derive(clap::Args)]
pub struct Args {
    #[arg(add = clap_complete::engine::ArgValueCompleter::new(super::completions::scripts))]
    script: Option<String>,
    /// Print JSON: a script's {"name", "origin", "description", "params": [{"name", "type", "required",
    /// "default", "secret", "env", "choices", "aliases", "doc"}]}; without a name, {"commands": [{"name",
    /// "about"}]}. A secret's default shows as "***".
    #[arg(long, env = "REWIND_JSON", value_parser = super::env_bool)]
    json: bool,
}

pub fn run(host: &Host, args: Args) -> ExitCode {
    let Some(name) = args.script else {
        use clap::CommandFactory;
        if args.json {
            let cmd = super::Cli::command();
            let commands: Vec<_> = cmd
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(|c| json!({"name": c.get_name(), "about": c.get_about().map(|a| a.to_string())}))
                .collect();
            return super::list::print_json(json!({ "commands": commands }));
        }
        let _ = super::Cli::command().print_long_help();
        return ExitCode::SUCCESS;
    };
    let Some(source) = host.search.find_script(&name) else {
        return not_found(&host.search, &name);
    };
    match load_script(host, &runtime(), &source) {
        Ok(s) if args.json => super::list::print_json(help_json(&s)),
        Ok(s) => {
            print!("{}", help_text(&s));
            ExitCode::SUCCESS
        }
        Err(e) => report_load_error(&e),
    }
}

fn help_json(s: &Script) -> serde_json::Value {
    let params: Vec<_> = s
        .params
        .iter()
        .map(|p| {
            let default = match &p.default {
                Some(_) if p.secret => json!("***"),
                Some(d) => d.clone(),
                None => serde_json::Value::Null,
            };
            json!({
                "name": p.name,
                "type": p.ty.name(),
                "required": p.required,
                "default": default,
                "secret": p.secret,
                "env": p.env,
                "choices": p.choices,
                "aliases": p.aliases,
                "doc": p.doc,
            })
        })
        .collect();
    json!({
        "name": s.source.name,
        "origin": s.source.origin.to_string(),
        "description": s.description.trim(),
        "params": params,
    })
}

fn help_text(s: &Script) -> String {
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
        if !p.aliases.is_empty() {
            flags.push(format!("also: {}", p.aliases.join(", ")));
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
