//! The scheduler loop: sleeps until the next due job, and wakes for file changes, API triggers, SIGHUP
//! and shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Daemon, Trigger, schedule};
use super::{StatusFile, api, watch};
use crate::host::runner::{self};
use std::sync::Arc;
use tokio::sync::mpsc;

impl Daemon {
    /// Fires every job whose time has come and computes its next time.
    fn fire_due(self: &Rc<Self>) {
        let now = Utc::now();
        let due: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = {
            let mut s = self.lock();
            let mut due = Vec::new();
            for j in s.jobs.values_mut() {
                let Some(t) = j.next else { continue };
                if t > now {
                    continue;
                }
                let base = j.next_base.unwrap_or(t);
                due.push((j.def.name.clone(), base, t));
                let mut nb = j.def.schedule.next_after(base);
                if nb.is_some_and(|n| n <= now) {
                    nb = j.def.schedule.next_after(now);
                }
                j.next_base = nb;
                j.next = nb.map(|b| b + schedule::jitter(j.def.jitter));
            }
            due
        };
        for (name, base, t) in &due {
            self.fire_scheduled(name, *base, *t, "schedule");
        }
        if !due.is_empty() {
            self.write_status_soon();
        }
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.lock().jobs.values().filter_map(|j| j.next).min()
    }

    fn running(&self) -> u64 {
        self.lock().metrics.running
    }
}

/// The daemon's main future, run inside a `LocalSet`.
pub async fn serve(
    d: Rc<Daemon>,
    grace: Duration,
    token: Option<String>,
    allow: Vec<ipnet::IpNet>,
    admin: Option<super::admin::Config>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<()> {
    let (trig_tx, mut trig_rx) = mpsc::unbounded_channel::<Trigger>();
    let (call_tx, mut call_rx) = mpsc::unbounded_channel::<super::calls::Call>();
    let (watch_tx, mut watch_rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();

    // Missed runs need the last fire times from the previous daemon.
    let previous: BTreeMap<String, DateTime<Utc>> = std::fs::read(d.state_dir.join("jobs.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<StatusFile>(&b).ok())
        .map(|st| {
            st.jobs
                .into_iter()
                .filter_map(|j| j.last_fire.map(|t| (j.name, t)))
                .collect()
        })
        .unwrap_or_default();
    d.reload_all(Some(&previous));

    let mut watch_dirs = vec![d.jobs_dir.clone()];
    watch_dirs.extend(d.search_dirs.iter().cloned());
    let _watcher = watch::start(&watch_dirs, &d.jobs_dir, watch_tx)?;

    let api_state = api::Api {
        shared: d.shared.clone(),
        triggers: trig_tx,
        calls: call_tx,
        token: token.map(Arc::new),
        allow: Arc::new(allow),
    };
    let _ = std::fs::remove_file(&d.socket);
    let unix = bind_private(&d.socket)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", d.socket.display()))?;
    let unix_app = api::unix_router(api_state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(unix, unix_app).await;
    });
    if let Some(addr) = &d.listen {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let pages = admin.map(|c| super::admin::router(api_state.clone(), c, &d.state_dir));
        tracing::info!(
            "HTTP API{} on {}://{}",
            if pages.is_some() {
                " and admin page"
            } else {
                ""
            },
            if tls.is_some() { "https" } else { "http" },
            tcp.local_addr()?
        );
        let app = api::tcp_router(api_state.clone(), pages)
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        match tls {
            Some(config) => {
                let listener = tcp.into_std()?;
                let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
                let server = axum_server::from_tcp_rustls(listener, config);
                tokio::spawn(async move {
                    if let Err(e) = server.serve(app).await {
                        tracing::error!("HTTPS listener stopped: {e}");
                    }
                });
            }
            None => {
                tokio::spawn(async move {
                    let _ = axum::serve(tcp, app).await;
                });
            }
        }
    }
    tracing::info!(
        "daemon started: {} jobs from {}, state in {}",
        d.lock().jobs.len(),
        d.jobs_dir.display(),
        d.state_dir.display()
    );
    let membership_stop = tokio_util::sync::CancellationToken::new();
    let membership = d.cluster.clone().map(|c| {
        tracing::info!(
            "cluster member {} in {} (renewed every {:?})",
            c.member,
            c.url,
            c.every
        );
        tokio::task::spawn_local(super::cluster::keep_membership(
            d.clone(),
            c,
            membership_stop.clone(),
        ))
    });

    let shutdown = runner::shutdown_signal();
    tokio::pin!(shutdown);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        let sleep = match d.next_due() {
            Some(t) => {
                let wait = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait.min(Duration::from_secs(3600)))
            }
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            _ = sleep => d.fire_due(),
            Some(paths) = watch_rx.recv() => {
                let mut set: BTreeSet<PathBuf> = paths.into_iter().collect();
                while let Ok(more) = watch_rx.try_recv() {
                    set.extend(more);
                }
                d.reload_paths(set);
            }
            Some(t) = trig_rx.recv() => {
                let mut r = d.fire(&t.job, None, "manual", Some((t.params, t.args)));
                if let Err((409, _)) = &r {
                    r = Err((409, format!("job {} is already running", t.job)));
                }
                let _ = t.reply.send(r);
            }
            Some(c) = call_rx.recv() => d.call(c),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading every job");
                d.reload_all(None);
            }
            _ = &mut shutdown => break,
        }
    }

    d.lock().stopping = true;
    let n = d.running();
    if n > 0 {
        tracing::info!("stopping: no new runs; waiting up to {grace:?} for {n} running");
        let deadline = tokio::time::Instant::now() + grace;
        while d.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if d.running() > 0 {
            tracing::warn!("grace period over: cancelling {} runs", d.running());
            d.cancel.cancel();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while d.running() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    membership_stop.cancel();
    if let Some(m) = membership {
        let _ = tokio::time::timeout(Duration::from_secs(10), m).await;
    }
    d.write_status(true);
    let _ = std::fs::remove_file(&d.socket);
    tracing::info!("daemon stopped");
    Ok(())
}

/// Binds the control socket with mode 0600 from its first moment: the umask is narrowed around `bind`
/// (a chmod afterwards would leave a window in which another user could connect).
fn bind_private(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    // SAFETY: umask only swaps the process's file-creation mask; it is restored right after the bind.
    let old = unsafe { libc::umask(0o177) };
    let res = tokio::net::UnixListener::bind(path);
    unsafe { libc::umask(old) };
    res
}
