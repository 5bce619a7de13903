//! `rewind jobs`: the daemon's jobs and runs, read from its state directory; `jobs run` asks the running
//! daemon through its socket.

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;

use rewind::daemon::history::{self, History};
use rewind::daemon::{StatusFile, default_state_dir};

use super::usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The daemon's state directory (default: daemon.state in the config file, else
    /// ~/.local/state/rewind/daemon).
    #[arg(long, value_name = "DIR", global = true, env = "REWIND_DAEMON_STATE")]
    pub state: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true, env = "REWIND_JSON", value_parser = super::env_bool)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
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

pub fn run(args: Args) -> ExitCode {
    let state = args.state.clone().unwrap_or_else(default_state_dir);
    match args.action {
        None => list(&state, args.json),
        Some(Action::Log { run_id }) => {
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
        Some(Action::Runs { job, limit }) => {
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
                        "{:<48} {:<20} {:<9} {:<12} {:>8}  {}",
                        r.id,
                        r.job,
                        r.status.as_str(),
                        r.member.as_deref().unwrap_or("-"),
                        r.duration_ms
                            .map(|d| format!("{:.1}s", d as f64 / 1000.0))
                            .unwrap_or_default(),
                        r.error.as_deref().unwrap_or("")
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Some(Action::Run { name, params }) => trigger(&state, &name, params),
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
    if let Some(c) = &st.cluster {
        let names: Vec<String> = c
            .members
            .iter()
            .map(|m| {
                let gone = if m.live { "" } else { ", gone" };
                format!("{} (renewed {} ago{gone})", m.name, ago(now - m.renewed))
            })
            .collect();
        println!(
            "cluster {} as {}: {} live of {}: {}",
            c.url,
            c.member,
            c.live(),
            c.members.len(),
            names.join(", ")
        );
    }
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
                "{}{} {} ago, took {:.1}s{}",
                r.status.as_str(),
                r.member
                    .as_ref()
                    .map(|m| format!(" on {m}"))
                    .unwrap_or_default(),
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
