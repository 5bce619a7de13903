//! `rewind stdlib export DIR`: copies the bundled scripts and modules for editing.

use std::path::PathBuf;
use std::process::ExitCode;

use rewind::host::{UsageError, search};

use super::{failed, usage};

#[derive(clap::Subcommand)]
pub enum Action {
    /// Copy the bundled scripts/ and stdlib/ to DIR for editing; use it with --path DIR or REWIND_PATH.
    Export {
        dir: PathBuf,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
        /// Print JSON: {"dir", "exported": N, "files": [...]}.
        #[arg(long, env = "REWIND_JSON", value_parser = super::env_bool)]
        json: bool,
    },
}

pub fn run(action: Action) -> ExitCode {
    let Action::Export { dir, force, json } = action;
    match search::export(&dir, force) {
        Ok(files) if json => super::list::print_json(serde_json::json!({
            "dir": dir.display().to_string(),
            "exported": files.len(),
            "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        })),
        Ok(files) => {
            println!(
                "exported {} files to {}; use them with --path {} or REWIND_PATH",
                files.len(),
                dir.display(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.downcast_ref::<UsageError>().is_some() => usage(format!("{e:#}")),
        Err(e) => failed(format!("{e:#}")),
    }
}
