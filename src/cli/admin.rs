//! `rewind admin`: helpers for the admin page's users file.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use rewind::daemon::admin::users::hash_password;

use super::{failed, usage};

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Print an argon2id hash of a password for the users file (`password_hash:`). The password is
    /// read from standard input: typed twice without echo on a terminal, else its first line.
    HashPassword,
}

pub fn run(action: Action) -> ExitCode {
    match action {
        Action::HashPassword => hash(),
    }
}

fn hash() -> ExitCode {
    let password = if std::io::stdin().is_terminal() {
        let first = match rpassword::prompt_password("Password: ") {
            Ok(p) => p,
            Err(e) => return failed(format!("cannot read the password: {e}")),
        };
        match rpassword::prompt_password("Again: ") {
            Ok(p) if p == first => first,
            Ok(_) => return usage("the two passwords differ; nothing was hashed"),
            Err(e) => return failed(format!("cannot read the password: {e}")),
        }
    } else {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            return failed(format!("cannot read the password from standard input: {e}"));
        }
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.is_empty() {
        return usage("the password is empty; give one on standard input");
    }
    match hash_password(&password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => failed(format!("hashing failed: {e}")),
    }
}
