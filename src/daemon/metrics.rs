//! The daemon's metrics for Prometheus (OpenMetrics text from `prometheus-client`): runs by job and
//! status, a run duration histogram, the last success time per job, and reload errors.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

const BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0];

type Labels = Vec<(&'static str, String)>;

fn job(job: &str) -> Labels {
    vec![("job", job.to_string())]
}

fn duration_histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

pub struct Metrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    durations: Family<Labels, Histogram, fn() -> Histogram>,
    last_success: Family<Labels, Gauge<f64, AtomicU64>>,
    reload_errors: Counter,
    jobs: Gauge,
    load_errors: Gauge,
    in_progress: Gauge,
    cluster_members: Gauge,
    claims: Family<Labels, Counter>,
    /// Runs in progress (also what the scheduler waits on at shutdown).
    pub running: u64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            runs: Family::default(),
            failures: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            last_success: Family::default(),
            reload_errors: Counter::default(),
            jobs: Gauge::default(),
            load_errors: Gauge::default(),
            in_progress: Gauge::default(),
            cluster_members: Gauge::default(),
            claims: Family::default(),
            running: 0,
        };
        let mut r = Registry::default();
        r.register(
            "rewind_runs",
            "Runs by job and final status",
            m.runs.clone(),
        );
        r.register(
            "rewind_run_failures",
            "Failed runs by job",
            m.failures.clone(),
        );
        r.register_with_unit(
            "rewind_run_duration",
            "Run durations",
            Unit::Seconds,
            m.durations.clone(),
        );
        r.register_with_unit(
            "rewind_last_success_timestamp",
            "When each job last succeeded (unix time)",
            Unit::Seconds,
            m.last_success.clone(),
        );
        r.register(
            "rewind_reload_errors",
            "Job loads that failed since start",
            m.reload_errors.clone(),
        );
        r.register(
            "rewind_job_load_errors",
            "Job files currently failing to load",
            m.load_errors.clone(),
        );
        r.register("rewind_jobs", "Scheduled jobs", m.jobs.clone());
        r.register(
            "rewind_runs_in_progress",
            "Runs in progress",
            m.in_progress.clone(),
        );
        r.register(
            "rewind_cluster_members",
            "Live members of the cluster (--cluster), this one included",
            m.cluster_members.clone(),
        );
        r.register(
            "rewind_claims",
            "Scheduled occurrences by claim result: won (ran here), lost (another member runs it), busy (left to others: the previous run still goes here), error",
            m.claims.clone(),
        );
        Metrics { registry: r, ..m }
    }
}

impl Metrics {
    pub fn record_run(&mut self, name: &str, status: &str, seconds: Option<f64>, at: f64) {
        let labels = vec![("job", name.to_string()), ("status", status.to_string())];
        self.runs.get_or_create(&labels).inc();
        if status == "failed" {
            self.failures.get_or_create(&job(name)).inc();
        }
        if let Some(s) = seconds {
            self.durations.get_or_create(&job(name)).observe(s);
        }
        if status == "done" {
            self.last_success.get_or_create(&job(name)).set(at);
        }
    }

    /// A scheduled occurrence's claim came out as `result`.
    pub fn claimed(&mut self, result: &str) {
        self.claims
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    pub fn set_members(&mut self, live: usize) {
        self.cluster_members.set(live as i64);
    }

    /// A job file failed to load (the last good version, if any, keeps running).
    pub fn reload_failed(&mut self) {
        self.reload_errors.inc();
    }

    /// `jobs`: loaded job count; `load_errors`: files currently failing to load.
    pub fn render(&self, jobs: usize, load_errors: usize) -> String {
        self.jobs.set(jobs as i64);
        self.load_errors.set(load_errors as i64);
        self.in_progress.set(self.running as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
