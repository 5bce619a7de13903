//! `rewind daemon`: checks the command line and starts the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rewind::daemon;
use rewind::host::{Host, UsageError};

use super::settings::{DaemonFile, unset};
use super::{failed, usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The directory of job files (NAME.yaml or NAME.lua). Required: here, in the variable or in the
    /// config file (daemon.jobs).
    #[arg(long, env = "REWIND_DAEMON_JOBS", value_name = "DIR")]
    pub jobs: Option<PathBuf>,
    /// Where run history, logs and the control socket live (default ~/.local/state/rewind/daemon).
    #[arg(long, env = "REWIND_DAEMON_STATE", value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Serve the HTTP API and /metrics on this address (e.g. 127.0.0.1:9180). Off by default.
    #[arg(long, env = "REWIND_DAEMON_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// At most this many runs at once.
    #[arg(
        long,
        env = "REWIND_DAEMON_MAX_CONCURRENT",
        value_name = "N",
        default_value_t = 4
    )]
    pub max_concurrent: usize,
    /// A file holding the API bearer token (else REWIND_DAEMON_TOKEN).
    #[arg(long, env = "REWIND_DAEMON_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Client networks allowed to use the HTTP API (repeatable, or comma-separated in the variable;
    /// default loopback only).
    #[arg(
        long,
        env = "REWIND_DAEMON_ALLOW",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub allow: Vec<String>,
    /// On SIGTERM or Ctrl-C, how long running jobs may take to finish before they are cancelled.
    #[arg(
        long,
        env = "REWIND_DAEMON_GRACE",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub grace: String,
    /// Runs kept per job in the history.
    #[arg(
        long,
        env = "REWIND_DAEMON_KEEP_RUNS",
        value_name = "N",
        default_value_t = 100
    )]
    pub keep_runs: usize,
    /// Runs older than this are dropped from the history.
    #[arg(
        long,
        env = "REWIND_DAEMON_KEEP_FOR",
        value_name = "DURATION",
        default_value = "30d"
    )]
    pub keep_for: String,
    /// Serve the admin page on --listen, with the users in FILE (YAML: name, password_hash from
    /// `rewind admin hash-password`, role viewer|operator).
    #[arg(long, env = "REWIND_DAEMON_USERS", value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Serve the admin page on --listen and take a `Remote-User` header from this address (an
    /// authenticating proxy such as Authelia) as the user; roles come from --users, else viewer.
    #[arg(long, env = "REWIND_DAEMON_TRUST_PROXY", value_name = "ADDR")]
    pub trust_proxy: Option<String>,
    /// Admin page: a session unused this long ends.
    #[arg(
        long,
        env = "REWIND_DAEMON_SESSION_IDLE",
        value_name = "DURATION",
        default_value = "30m"
    )]
    pub session_idle: String,
    /// Admin page: a session ends this long after its login, used or not.
    #[arg(
        long,
        env = "REWIND_DAEMON_SESSION_MAX",
        value_name = "DURATION",
        default_value = "12h"
    )]
    pub session_max: String,
    /// Serve --listen over TLS with this certificate chain (PEM); needs --tls-key. Cookies get Secure.
    #[arg(long, env = "REWIND_DAEMON_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "REWIND_DAEMON_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Share the jobs with the other daemons given this store URL (s3://bucket/prefix, az://...,
    /// a directory): each scheduled occurrence runs on exactly one of them, the one whose claim
    /// `<URL>/claims/<job>/<time>` lands first. Members announce themselves under `<URL>/members/` and
    /// publish their runs under `<URL>/runs/`; claims and records older than --keep-for are pruned.
    #[arg(long, env = "REWIND_DAEMON_CLUSTER", value_name = "URL")]
    pub cluster: Option<String>,
    /// This daemon's name in the cluster (default: the host name). Unique per daemon.
    #[arg(long, env = "REWIND_DAEMON_MEMBER", value_name = "NAME")]
    pub member: Option<String>,
    /// How often a cluster member renews its announcement and copies the others' runs; it counts as
    /// gone after three periods without a renewal.
    #[arg(
        long,
        env = "REWIND_DAEMON_MEMBER_EVERY",
        value_name = "DURATION",
        default_value = "10s"
    )]
    pub member_every: String,
}

/// Fills what neither a flag nor its variable gave from the config file's `daemon:` section. The
/// checks clap's `requires` would make (it sees only flags and variables) follow, over all sources.
pub fn fill_from_config(
    args: &mut Args,
    m: &clap::ArgMatches,
    d: DaemonFile,
) -> Result<(), String> {
    let member_every = d.member_every.is_some() || !unset(m, "member_every");
    macro_rules! fill {
        ($($f:ident $how:ident),*) => {$(
            if let Some(v) = d.$f && unset(m, stringify!($f)) {
                fill!(@$how args.$f, v);
            }
        )*};
        (@opt $t:expr, $v:ident) => { $t = Some($v) };
        (@val $t:expr, $v:ident) => { $t = $v };
    }
    fill!(jobs opt, state opt, listen opt, max_concurrent val, token_file opt, allow val, grace val,
        keep_runs val, keep_for val, users opt, trust_proxy opt, session_idle val, session_max val,
        tls_cert opt, tls_key opt, cluster opt, member opt, member_every val);
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together: give both".into());
    }
    if args.cluster.is_none() && (args.member.is_some() || member_every) {
        return Err(
            "--member and --member-every are for a --cluster: give --cluster URL too".into(),
        );
    }
    Ok(())
}

pub fn run(host: Host, args: Args) -> ExitCode {
    let Some(jobs) = args.jobs.clone() else {
        return usage(
            "the daemon needs its jobs directory: --jobs DIR, REWIND_DAEMON_JOBS or daemon.jobs in the config file",
        );
    };
    if !jobs.is_dir() {
        return usage(format!("--jobs {}: not a directory", jobs.display()));
    }
    let grace = match seconds(&args.grace, "grace") {
        Ok(s) => Duration::from_secs_f64(s),
        Err(e) => return usage(e),
    };
    let keep_for = match seconds(&args.keep_for, "keep-for") {
        Ok(s) => chrono::Duration::seconds(s as i64),
        Err(e) => return usage(e),
    };
    if args.max_concurrent == 0 {
        return usage("--max-concurrent must be at least 1");
    }
    let mut allow = Vec::new();
    let nets = if args.allow.is_empty() {
        vec!["127.0.0.0/8".to_string(), "::1/128".to_string()]
    } else {
        args.allow.clone()
    };
    for a in &nets {
        let parsed = a
            .parse::<ipnet::IpNet>()
            .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) => allow.push(n),
            Err(_) => {
                return usage(format!(
                    "--allow {a}: not an address or CIDR network (like 10.0.0.0/8)"
                ));
            }
        }
    }
    let token = match &args.token_file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            Ok(_) => return usage(format!("--token-file {}: the file is empty", f.display())),
            Err(e) => return usage(format!("--token-file {}: {e}", f.display())),
        },
        None => std::env::var("REWIND_DAEMON_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    };
    if let Some(t) = &token {
        rewind::base::redact::register(t);
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => match daemon::tls::server_config(c, k) {
            Ok(t) => Some(t),
            Err(e) => return usage(e),
        },
        _ => None,
    };
    if tls.is_some() && args.listen.is_none() {
        return usage("--tls-cert and --tls-key secure --listen ADDR: give it too");
    }
    let admin = match admin_config(&args, tls.is_some()) {
        Ok(a) => a,
        Err(e) => return usage(e),
    };
    if args.listen.is_some() && token.is_none() && admin.is_none() {
        return usage(
            "--listen needs an API token (--token-file FILE or REWIND_DAEMON_TOKEN) or the admin page (--users FILE or --trust-proxy ADDR)",
        );
    }
    if admin.is_some() && args.listen.is_none() {
        return usage(
            "--users and --trust-proxy serve the admin page on --listen ADDR: give it too",
        );
    }
    let cluster = match &args.cluster {
        Some(url) => {
            let member = args.member.clone().unwrap_or_else(|| {
                hostname::get()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "rewind".into())
            });
            if let Err(e) = daemon::cluster::check_member_name(&member) {
                return usage(e);
            }
            let every = match seconds(&args.member_every, "member-every") {
                Ok(s) if s >= 0.2 => Duration::from_secs_f64(s),
                Ok(_) => return usage("--member-every must be at least 200ms"),
                Err(e) => return usage(e),
            };
            Some(daemon::cluster::Settings {
                url: url.clone(),
                member,
                every,
                keep_for,
            })
        }
        None => None,
    };
    let config = daemon::Config {
        cluster,
        host,
        jobs_dir: jobs,
        state_dir: args.state.clone().unwrap_or_else(daemon::default_state_dir),
        listen: args.listen.clone(),
        max_concurrent: args.max_concurrent,
        grace,
        token,
        allow,
        keep_runs: args.keep_runs,
        keep_for,
        admin,
        tls,
    };
    match daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => usage(format!("{e:#}")),
        Err(e) => failed(format!("{e:#}")),
    }
}

/// The admin page's settings, when `--users` or `--trust-proxy` asks for it.
fn admin_config(args: &Args, tls: bool) -> Result<Option<daemon::admin::Config>, String> {
    if args.users.is_none() && args.trust_proxy.is_none() {
        return Ok(None);
    }
    let users = match &args.users {
        Some(f) => daemon::admin::users::Users::load(f).map_err(|e| format!("--users {e}"))?,
        None => Default::default(),
    };
    let trust_proxy = match &args.trust_proxy {
        Some(a) => Some(
            a.parse::<std::net::IpAddr>()
                .map_err(|_| format!("--trust-proxy {a}: not an IP address (like 10.0.0.5)"))?,
        ),
        None => None,
    };
    let limits = daemon::admin::Limits {
        idle: Duration::from_secs_f64(seconds(&args.session_idle, "session-idle")?),
        absolute: Duration::from_secs_f64(seconds(&args.session_max, "session-max")?),
        ..Default::default()
    };
    Ok(Some(daemon::admin::Config {
        users,
        trust_proxy,
        limits,
        secure_cookies: tls,
    }))
}

fn seconds(text: &str, what: &str) -> Result<f64, String> {
    rewind::base::duration::parse_duration(text).map_err(|e| format!("--{what} '{text}': {e}"))
}
