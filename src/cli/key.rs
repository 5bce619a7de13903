//! `rewind key new FILE` / `rewind key public FILE`: age keys for encrypted stores without age-keygen.

use std::path::PathBuf;
use std::process::ExitCode;

use rewind::host::UsageError;
use rewind::prims::storage::encrypted;

use super::{failed, usage};

#[derive(clap::Subcommand)]
pub enum Action {
    /// Make an X25519 key pair: the identity (secret) goes to FILE (mode 0600, never overwritten), the
    /// public key (give it as encrypt=) is printed. Same format as age-keygen's.
    New { file: PathBuf },
    /// Print the public keys (encrypt=) of the identities in an identity FILE.
    Public { file: PathBuf },
}

pub fn run(action: Action) -> ExitCode {
    let res = match &action {
        Action::New { file } => encrypted::new_identity_file(file).map(|public| {
            eprintln!(
                "wrote the identity (secret) to {}; keep it away from machines that only back up",
                file.display()
            );
            vec![public]
        }),
        Action::Public { file } => encrypted::public_keys(file),
    };
    match res {
        Ok(keys) => {
            for k in keys {
                println!("{k}");
            }
            ExitCode::SUCCESS
        }
        Err(e) if e.downcast_ref::<UsageError>().is_some() => usage(format!("{e:#}")),
        Err(e) => failed(format!("{e:#}")),
    }
}
