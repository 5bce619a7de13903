//! Prometheus text exposition of the daemon's counters: runs by job and status, a run duration histogram,
//! the last success time per job, and reload errors.

use std::collections::BTreeMap;
use std::fmt::Write;

const BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0];

#[derive(Default)]
pub struct Metrics {
    /// (job, status) → count
    pub runs: BTreeMap<(String, String), u64>,
    /// job → (bucket counts, sum, count)
    pub durations: BTreeMap<String, (Vec<u64>, f64, u64)>,
    /// job → unix seconds
    pub last_success: BTreeMap<String, f64>,
    pub reload_errors_total: u64,
    pub running: u64,
}

impl Metrics {
    pub fn record_run(&mut self, job: &str, status: &str, seconds: Option<f64>, at: f64) {
        *self.runs.entry((job.into(), status.into())).or_default() += 1;
        if let Some(s) = seconds {
            let e = self
                .durations
                .entry(job.into())
                .or_insert_with(|| (vec![0; BUCKETS.len()], 0.0, 0));
            for (i, b) in BUCKETS.iter().enumerate() {
                if s <= *b {
                    e.0[i] += 1;
                }
            }
            e.1 += s;
            e.2 += 1;
        }
        if status == "done" {
            self.last_success.insert(job.into(), at);
        }
    }

    /// `jobs`: loaded job count; `load_errors`: files currently failing to load.
    pub fn render(&self, jobs: usize, load_errors: usize) -> String {
        let mut o = String::new();
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        o.push_str("# HELP rewind_runs_total Runs by job and final status.\n# TYPE rewind_runs_total counter\n");
        for ((job, status), n) in &self.runs {
            let _ = writeln!(
                o,
                "rewind_runs_total{{job=\"{}\",status=\"{status}\"}} {n}",
                esc(job)
            );
        }
        o.push_str("# HELP rewind_run_failures_total Failed runs by job.\n# TYPE rewind_run_failures_total counter\n");
        for ((job, status), n) in &self.runs {
            if status == "failed" {
                let _ = writeln!(o, "rewind_run_failures_total{{job=\"{}\"}} {n}", esc(job));
            }
        }
        o.push_str("# HELP rewind_run_duration_seconds Run durations.\n# TYPE rewind_run_duration_seconds histogram\n");
        for (job, (buckets, sum, count)) in &self.durations {
            let j = esc(job);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "rewind_run_duration_seconds_bucket{{job=\"{j}\",le=\"{b}\"}} {}",
                    buckets[i]
                );
            }
            let _ = writeln!(
                o,
                "rewind_run_duration_seconds_bucket{{job=\"{j}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(o, "rewind_run_duration_seconds_sum{{job=\"{j}\"}} {sum}");
            let _ = writeln!(
                o,
                "rewind_run_duration_seconds_count{{job=\"{j}\"}} {count}"
            );
        }
        o.push_str("# HELP rewind_last_success_timestamp_seconds When each job last succeeded.\n# TYPE rewind_last_success_timestamp_seconds gauge\n");
        for (job, t) in &self.last_success {
            let _ = writeln!(
                o,
                "rewind_last_success_timestamp_seconds{{job=\"{}\"}} {t}",
                esc(job)
            );
        }
        let _ = write!(
            o,
            "# HELP rewind_reload_errors_total Job loads that failed since start.\n# TYPE rewind_reload_errors_total counter\nrewind_reload_errors_total {}\n\
             # HELP rewind_job_load_errors Job files currently failing to load.\n# TYPE rewind_job_load_errors gauge\nrewind_job_load_errors {load_errors}\n\
             # HELP rewind_jobs Scheduled jobs.\n# TYPE rewind_jobs gauge\nrewind_jobs {jobs}\n\
             # HELP rewind_runs_in_progress Runs in progress.\n# TYPE rewind_runs_in_progress gauge\nrewind_runs_in_progress {}\n",
            self.reload_errors_total, self.running
        );
        o
    }
}
