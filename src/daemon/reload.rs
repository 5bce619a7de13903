//! Loading job files: at start-up (with missed runs), on file changes, and on SIGHUP. A broken edit keeps
//! the last good version running.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use chrono::{DateTime, Utc};

use super::jobs::{self, JobDef, OnMissed};
use super::runs::skip_record;
use super::{Daemon, JobState, norm, schedule};

fn first_next(def: &JobDef, now: DateTime<Utc>) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let base = def.schedule.next_after(now);
    (base, base.map(|b| b + schedule::jitter(def.jitter)))
}

fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| "never".into())
}

impl Daemon {
    fn job_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(&self.jobs_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| self.jobs_dir.join(e.file_name())))
                    .filter(|p| jobs::is_job_file(p) && p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Loads every job file; on start-up, also decides about missed runs.
    pub fn reload_all(self: &Rc<Self>, startup: Option<&BTreeMap<String, DateTime<Utc>>>) {
        let files = self.job_files();
        let present: BTreeSet<PathBuf> = files.iter().cloned().collect();
        {
            let mut s = self.lock();
            let gone: Vec<String> = s
                .jobs
                .values()
                .filter(|j| !present.contains(&j.def.file))
                .map(|j| j.def.name.clone())
                .collect();
            for name in gone {
                tracing::info!("job {name}: its file is gone; unscheduled");
                s.jobs.remove(&name);
            }
            s.file_errors.retain(|f, _| present.contains(f));
        }
        for f in files {
            self.reload_file(&f);
        }
        if let Some(last) = startup {
            self.missed_runs(last);
        }
        // Reloads are rare: the job table shows them at once.
        self.write_status(false);
    }

    fn missed_runs(self: &Rc<Self>, last: &BTreeMap<String, DateTime<Utc>>) {
        let now = Utc::now();
        let mut to_run = Vec::new();
        {
            let mut s = self.lock();
            let mut skipped = Vec::new();
            for j in s.jobs.values_mut() {
                let Some(l) = last.get(&j.def.name) else {
                    continue;
                };
                j.last_fire = Some(*l);
                let Some(due) = j.def.schedule.next_after(*l) else {
                    continue;
                };
                if due >= now - chrono::Duration::seconds(2) {
                    continue;
                }
                match j.def.on_missed {
                    OnMissed::RunOnce => {
                        tracing::info!(
                            "job {}: missed its run at {due} while the daemon was down; running it once now",
                            j.def.name
                        );
                        to_run.push((j.def.name.clone(), due));
                    }
                    OnMissed::Skip => {
                        tracing::info!(
                            "job {}: missed its run at {due} while the daemon was down; skipped (on_missed: skip)",
                            j.def.name
                        );
                        skipped.push(skip_record(
                            &j.def.name,
                            "missed",
                            Some(due),
                            format!(
                                "missed the run at {} while the daemon was down (on_missed: skip)",
                                due.to_rfc3339()
                            ),
                        ));
                    }
                }
            }
            for r in skipped {
                s.metrics.record_run(&r.job, "skipped", None, 0.0);
                s.history.save(&r);
            }
        }
        for (name, due) in to_run {
            self.fire_scheduled(&name, due, due, "missed");
        }
    }

    /// Loads one job file (or unschedules it when it is gone); a bad version keeps the last good one.
    pub fn reload_file(self: &Rc<Self>, file: &Path) {
        let name = jobs::job_name(file);
        if !file.exists() {
            let mut s = self.lock();
            s.file_errors.remove(file);
            if s.jobs.get(&name).is_some_and(|j| j.def.file == file) {
                s.jobs.remove(&name);
                tracing::info!("job {name}: {} was deleted; unscheduled", file.display());
            }
            return;
        }
        let loaded = jobs::load(&self.host, file).map(|mut d| {
            d.file = file.to_path_buf();
            d.deps = d.deps.iter().map(|p| norm(p)).collect();
            d
        });
        let mut s = self.lock();
        match loaded {
            Ok(def) => {
                s.file_errors.remove(file);
                let now = Utc::now();
                match s.jobs.get_mut(&name) {
                    Some(j) if j.def.file != def.file => {
                        let e = format!(
                            "{}:1: a job named {name} is already defined by {}",
                            file.display(),
                            j.def.file.display()
                        );
                        tracing::error!("{e}");
                        s.metrics.reload_failed();
                        s.file_errors.insert(file.to_path_buf(), e);
                    }
                    Some(j) => {
                        let changed = j.def.schedule_text != def.schedule_text
                            || j.def.timezone != def.timezone
                            || j.def.jitter != def.jitter;
                        if changed || j.next.is_none() {
                            (j.next_base, j.next) = first_next(&def, now);
                        }
                        if j.error.take().is_some() {
                            tracing::info!("job {name}: {} loads again", file.display());
                        }
                        tracing::info!(
                            "job {name}: reloaded ({}), next run {}",
                            def.schedule_text,
                            fmt_time(j.next)
                        );
                        j.def = def;
                    }
                    None => {
                        let (next_base, next) = first_next(&def, now);
                        tracing::info!(
                            "job {name}: scheduled ({}), next run {}",
                            def.schedule_text,
                            fmt_time(next)
                        );
                        let last = s.history.last_for(&name).cloned();
                        s.jobs.insert(
                            name,
                            JobState {
                                def,
                                next_base,
                                next,
                                running: None,
                                error: None,
                                last,
                                last_fire: None,
                            },
                        );
                    }
                }
            }
            Err(e) => {
                s.metrics.reload_failed();
                match s.jobs.get_mut(&name) {
                    Some(j) if j.def.file == file => {
                        tracing::error!("job {name}: {e} (keeping the last good version)");
                        j.error = Some(e);
                    }
                    _ => {
                        tracing::error!("job {name}: {e} (not scheduled)");
                        s.file_errors.insert(file.to_path_buf(), e);
                    }
                }
            }
        }
    }

    /// Handles changed paths from the watcher: job files reload themselves; a script or module reloads the
    /// jobs that loaded it, and an unknown one (maybe a new file shadowing a bundled one) reloads all.
    pub fn reload_paths(self: &Rc<Self>, paths: BTreeSet<PathBuf>) {
        let mut files = BTreeSet::new();
        let mut all = false;
        for p in paths {
            let p = norm(&p);
            if p.parent() == Some(self.jobs_dir.as_path()) {
                if jobs::is_job_file(&p) {
                    files.insert(p);
                }
                continue;
            }
            if p.extension().is_none_or(|e| e != "lua") {
                continue;
            }
            let s = self.lock();
            let users: Vec<PathBuf> = s
                .jobs
                .values()
                .filter(|j| j.def.deps.contains(&p))
                .map(|j| j.def.file.clone())
                .collect();
            if users.is_empty() {
                all = true;
            }
            files.extend(users);
        }
        if all {
            self.reload_all(None);
            return;
        }
        for f in &files {
            self.reload_file(f);
        }
        if !files.is_empty() {
            self.write_status(false);
        }
    }
}
