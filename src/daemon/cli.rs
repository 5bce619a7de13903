//! The `rewind daemon` and `rewind jobs` commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use clap::{Args, Subcommand};

use super::history::{self, History};
use super::metrics::Metrics;
use super::{Daemon, Shared, StatusFile, default_state_dir};
use crate::host::Host;

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// The directory of job files (NAME.yaml or NAME.lua).
    #[arg(long, value_name = "DIR")]
    pub jobs: PathBuf,
    /// Where run history, logs and the control socket live (default ~/.local/state/rewind/daemon).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Serve the HTTP API and /metrics on this address (e.g. 127.0.0.1:9180). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// At most this many runs at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_concurrent: usize,
    /// A file holding the API bearer token (else REWIND_DAEMON_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Client networks allowed to use the HTTP API (repeatable; default loopback only).
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,
    /// On SIGTERM or Ctrl-C, how long running jobs may take to finish before they are cancelled.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub grace: String,
    /// Runs kept per job in the history.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub keep_runs: usize,
    /// Runs older than this are dropped from the history.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub keep_for: String,
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// The daemon's state directory (default ~/.local/state/rewind/daemon).
    #[arg(long, value_name = "DIR", global = true)]
    pub state: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<JobsAction>,
}

#[derive(Subcommand, Debug)]
pub enum JobsAction {
    /// Run a job now through the running daemon, with extra params as key=value.
    Run {
        name: String,
        #[arg(value_name = "KEY=VALUE")]
        params: Vec<String>,
    },
    /// Print a run's log lines.
    Log { run_id: String },
    /// List recent runs (all jobs, or one).
    Runs {
        job: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

fn usage(msg: impl AsRef<str>) -> ExitCode {
    eprintln!("error: {}", crate::redact::redact(msg.as_ref()));
    ExitCode::from(2)
}

fn seconds(text: &str, what: &str) -> Result<f64, String> {
    crate::host::params::parse_duration(text).map_err(|e| format!("--{what} '{text}': {e}"))
}

pub fn daemon_main(host: Host, args: DaemonArgs) -> ExitCode {
    if !args.jobs.is_dir() {
        return usage(format!("--jobs {}: not a directory", args.jobs.display()));
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
        crate::redact::register(t);
    }
    if args.listen.is_some() && token.is_none() {
        return usage("--listen needs an API token: --token-file FILE or REWIND_DAEMON_TOKEN");
    }
    let state = args.state.clone().unwrap_or_else(default_state_dir);
    if let Err(e) = std::fs::create_dir_all(&state) {
        return usage(format!("--state {}: {e}", state.display()));
    }
    let state = super::norm(&state);
    let jobs_dir = super::norm(&args.jobs);
    let history = match History::open(&state, args.keep_runs.max(1), keep_for) {
        Ok(h) => h,
        Err(e) => return usage(format!("--state {}: {e:#}", state.display())),
    };
    let search_dirs: Vec<PathBuf> = host
        .search
        .dirs
        .iter()
        .filter(|d| d.is_dir())
        .map(|d| super::norm(d))
        .collect();
    let d = Rc::new(Daemon {
        host,
        jobs_dir,
        socket: state.join("daemon.sock"),
        state_dir: state,
        listen: args.listen.clone(),
        shared: Arc::new(Mutex::new(Shared {
            jobs: Default::default(),
            file_errors: Default::default(),
            history,
            metrics: Metrics::default(),
            stopping: false,
        })),
        sem: Arc::new(tokio::sync::Semaphore::new(args.max_concurrent)),
        cancel: Default::default(),
        search_dirs,
        status_pending: Default::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let res = local.block_on(&rt, super::serve(d, grace, token, allow));
    rt.shutdown_timeout(Duration::from_secs(2));
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn read_status(state: &Path) -> Result<StatusFile, String> {
    let p = state.join("jobs.json");
    let bytes = std::fs::read(&p).map_err(|_| {
        format!(
            "no daemon state in {} (start `rewind daemon --jobs DIR --state {}` first)",
            state.display(),
            state.display()
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", p.display()))
}

fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s.abs() < 120 {
        format!("{s}s")
    } else if s.abs() < 7200 {
        format!("{}m", s / 60)
    } else {
        format!("{}h", s / 3600)
    }
}

pub fn jobs_main(args: JobsArgs) -> ExitCode {
    let state = args.state.clone().unwrap_or_else(default_state_dir);
    match args.action {
        None => list(&state, args.json),
        Some(JobsAction::Log { run_id }) => {
            if !history::valid_id(&run_id) {
                return usage(format!("'{run_id}' is not a run id"));
            }
            let p = state.join("runs").join(format!("{run_id}.log"));
            match std::fs::read_to_string(&p) {
                Ok(t) => {
                    print!("{t}");
                    ExitCode::SUCCESS
                }
                Err(_) if state.join("runs").join(format!("{run_id}.json")).exists() => {
                    ExitCode::SUCCESS
                }
                Err(_) => usage(format!("no run {run_id} in {}", state.display())),
            }
        }
        Some(JobsAction::Runs { job, limit }) => {
            let h = match History::open(&state, usize::MAX, chrono::Duration::days(36500)) {
                Ok(h) => h,
                Err(e) => return usage(format!("{e:#}")),
            };
            let runs: Vec<_> = h
                .runs
                .iter()
                .rev()
                .filter(|r| job.as_ref().is_none_or(|j| &r.job == j))
                .take(limit)
                .collect();
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&runs).unwrap_or_default()
                );
            } else {
                for r in runs {
                    println!(
                        "{:<48} {:<20} {:<9} {:>8}  {}",
                        r.id,
                        r.job,
                        r.status.as_str(),
                        r.duration_ms
                            .map(|d| format!("{:.1}s", d as f64 / 1000.0))
                            .unwrap_or_default(),
                        r.error.as_deref().unwrap_or("")
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Some(JobsAction::Run { name, params }) => trigger(&state, &name, params),
    }
}

fn list(state: &Path, json: bool) -> ExitCode {
    let st = match read_status(state) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    if json {
        use std::io::Write;
        // A reader that stops early (grep -q) is not an error.
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&st).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let alive = !st.stopped && unsafe { libc::kill(st.pid as i32, 0) } == 0;
    if !alive {
        println!(
            "(the daemon is not running; state as of {})",
            st.updated.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    let now = Utc::now();
    println!(
        "{:<24} {:<18} {:<22} LAST RUN",
        "JOB", "SCHEDULE", "NEXT RUN"
    );
    for j in &st.jobs {
        let next = match j.next_run {
            Some(t) => format!("{} (in {})", t.format("%H:%M:%S"), ago(t - now)),
            None => "-".into(),
        };
        let last = match (&j.running, &j.last_run) {
            (Some(id), _) => format!("running ({id})"),
            (None, Some(r)) => format!(
                "{} {} ago, took {:.1}s{}",
                r.status.as_str(),
                ago(now - r.started),
                r.duration_ms.unwrap_or(0) as f64 / 1000.0,
                r.error
                    .as_ref()
                    .map(|e| format!(": {}", e.lines().next().unwrap_or("")))
                    .unwrap_or_default()
            ),
            (None, None) => "never".into(),
        };
        let sched = match &j.timezone {
            Some(tz) => format!("{} {tz}", j.schedule),
            None => j.schedule.clone(),
        };
        println!("{:<24} {:<18} {:<22} {last}", j.name, sched, next);
        if let Some(e) = &j.error {
            println!("  load error (the last good version keeps running): {e}");
        }
    }
    for e in &st.load_errors {
        println!("not loaded: {}", e.error);
    }
    ExitCode::SUCCESS
}

fn trigger(state: &Path, name: &str, params: Vec<String>) -> ExitCode {
    for p in &params {
        if p.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
            return usage(format!("params are key=value; '{p}' has no '='"));
        }
    }
    let socket = state.join("daemon.sock");
    if !socket.exists() {
        return usage(format!(
            "no running daemon with state in {} (no {})",
            state.display(),
            socket.display()
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let res = rt.block_on(async {
        let client = reqwest::Client::builder()
            .unix_socket(socket.clone())
            .build()?;
        let resp = client
            .post(format!("http://daemon/api/jobs/{name}/run"))
            .json(&serde_json::json!({"args": params}))
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    });
    match res {
        Ok((s, body)) if s.is_success() => {
            println!("started run {}", body["run_id"].as_str().unwrap_or("?"));
            ExitCode::SUCCESS
        }
        Ok((s, body)) => {
            let msg = body["error"].as_str().unwrap_or("").to_string();
            if s.as_u16() == 404 || s.as_u16() == 400 {
                usage(msg)
            } else {
                eprintln!("error: {msg}");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!(
                "error: cannot reach the daemon at {}: {e}",
                socket.display()
            );
            ExitCode::from(1)
        }
    }
}
