//! Drawing progress: the figures from the counters, then a bar, a log line or a JSON event. One thread
//! per progress wakes every tick (200 ms for the bar, `REWIND_PROGRESS_EVERY` otherwise, default 10 s)
//! and draws; when the totals become known JSON gets an event at once; the end draws the last report.

use crate::base::units::human_bytes;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::{Mode, Shared, Unit};

const DEFAULT_EVERY: Duration = Duration::from_secs(10);
const BAR_TICK: Duration = Duration::from_millis(200);

/// How often a log line or JSON event is made: `REWIND_PROGRESS_EVERY` (a duration such as `100ms`,
/// `30s`), default 10 s.
pub fn every() -> Duration {
    static EVERY: OnceLock<Duration> = OnceLock::new();
    *EVERY.get_or_init(|| {
        let Ok(v) = std::env::var("REWIND_PROGRESS_EVERY") else {
            return DEFAULT_EVERY;
        };
        match humantime::parse_duration(v.trim()) {
            Ok(d) if d >= Duration::from_millis(1) => d,
            _ => {
                tracing::warn!(
                    "REWIND_PROGRESS_EVERY={v:?} is not a duration of at least 1ms (e.g. 100ms, 30s); using 10s"
                );
                DEFAULT_EVERY
            }
        }
    })
}

/// What a report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub files_done: u64,
    pub files_total: Option<u64>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    /// Of the bytes when their total is known and not zero, else of the files; one decimal, floored.
    pub percent: Option<f64>,
    /// Bytes read or written per second (unchanged files, done without reading, do not count).
    pub bytes_per_second: f64,
    pub files_per_second: f64,
    /// The rate and ETA go by bytes (else by files or items).
    pub by_bytes: bool,
    pub eta_seconds: Option<f64>,
    pub elapsed_seconds: f64,
    pub scanning: bool,
}

pub(super) fn figures(s: &Shared, done: bool) -> Figures {
    let elapsed = s.start.elapsed().as_secs_f64();
    let files_done = s.files_done.load(Ordering::Relaxed);
    let bytes_done = s.bytes_done.load(Ordering::Relaxed);
    let moved = s.bytes_moved.load(Ordering::Relaxed);
    let files_total = Shared::total(&s.files_total);
    let bytes_total = Shared::total(&s.bytes_total);
    let scanning = s.scanning.load(Ordering::Relaxed) && !done;
    let by_bytes = bytes_total.is_some_and(|t| t > 0) || moved > 0;
    let ratio = match (bytes_total, files_total) {
        (Some(bt), _) if bt > 0 => Some(bytes_done as f64 / bt as f64),
        (_, Some(ft)) if ft > 0 => Some(files_done as f64 / ft as f64),
        // Nothing to do at all.
        (Some(_), _) | (_, Some(_)) if !scanning => Some(1.0),
        _ => None,
    };
    let percent = ratio.map(|r| (r.min(1.0) * 1000.0).floor() / 10.0);
    let secs = elapsed.max(0.001);
    let bytes_per_second = moved as f64 / secs;
    let files_per_second = files_done as f64 / secs;
    // What is left to move, at the rate so far (an average, as restic's). Unchanged files the scan found
    // are left out of the work: they count as done the moment the archive reaches them.
    let left = |total: Option<u64>, skip: u64, did: u64, rate: f64| -> Option<f64> {
        let left = total?.saturating_sub(skip).saturating_sub(did);
        if left == 0 {
            Some(0.0)
        } else if did > 0 && rate > 0.0 {
            Some(left as f64 / rate)
        } else {
            None
        }
    };
    let eta_seconds = if done {
        Some(0.0)
    } else if scanning {
        None
    } else if by_bytes {
        let skip = s.bytes_unchanged_total.load(Ordering::Relaxed);
        left(bytes_total, skip, moved, bytes_per_second)
    } else {
        left(files_total, 0, files_done, files_per_second)
    };
    Figures {
        files_done,
        files_total,
        bytes_done,
        bytes_total,
        percent,
        bytes_per_second,
        files_per_second,
        by_bytes,
        eta_seconds,
        elapsed_seconds: elapsed,
        scanning,
    }
}

/// `6s`, `1m 23s`, `2h 05m`.
pub(super) fn human_secs(secs: f64) -> String {
    let s = secs.ceil() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// `3,412/10,000 files, 341 MiB/1.00 GiB (33%), 120 MiB/s, eta 6s` (the line without its label).
pub(super) fn line(unit: Unit, f: &Figures) -> String {
    let noun = match unit {
        Unit::Files => "files",
        Unit::Items => "items",
    };
    let more = if f.scanning { "+" } else { "" };
    let count = |n: u64| indicatif::HumanCount(n).to_string();
    let mut parts = Vec::new();
    if f.files_total.is_some_and(|t| t > 0) || f.files_done > 0 || !f.by_bytes {
        parts.push(match f.files_total {
            Some(t) => format!("{}/{}{more} {noun}", count(f.files_done), count(t)),
            None => format!("{} {noun}", count(f.files_done)),
        });
    }
    if f.bytes_total.is_some_and(|t| t > 0) || f.bytes_done > 0 {
        parts.push(match f.bytes_total {
            Some(t) => format!("{}/{}{more}", human_bytes(f.bytes_done), human_bytes(t)),
            None => human_bytes(f.bytes_done),
        });
    }
    let note = match (f.percent, f.scanning) {
        (Some(p), false) => format!(" ({}%)", p.floor()),
        (Some(p), true) => format!(" ({}%, scanning)", p.floor()),
        (None, true) => " (scanning)".to_string(),
        (None, false) => String::new(),
    };
    if let Some(last) = parts.last_mut() {
        last.push_str(&note);
    }
    parts.push(if f.by_bytes {
        format!("{}/s", human_bytes(f.bytes_per_second as u64))
    } else {
        format!("{:.1} {noun}/s", f.files_per_second)
    });
    if let Some(eta) = f.eta_seconds {
        parts.push(format!("eta {}", human_secs(eta)));
    }
    parts.join(", ")
}

/// The JSON event (one line): the shape the README documents as stable.
pub(super) fn event(label: &str, f: &Figures, done: bool, failed: bool) -> String {
    let mut v = serde_json::json!({
        "event": "progress",
        "label": label,
        "files_done": f.files_done,
        "files_total": f.files_total,
        "bytes_done": f.bytes_done,
        "bytes_total": f.bytes_total,
        "percent": f.percent,
        "bytes_per_second": f.bytes_per_second.round() as u64,
        "eta_seconds": f.eta_seconds.map(|e| e.ceil() as u64),
        "elapsed_seconds": (f.elapsed_seconds * 1000.0).round() / 1000.0,
        "scanning": f.scanning,
        "done": done,
    });
    if failed {
        v["failed"] = true.into();
    }
    v.to_string()
}

/// The totals became known (given, or the scan ended): JSON gets an event at once, from the caller's
/// thread, so that it comes before any later one; the bar is redrawn; lines wait for their period.
pub(super) fn known(s: &Shared) {
    let mut w = s.wake.lock().unwrap_or_else(|e| e.into_inner());
    if w.stop {
        return;
    }
    match s.mode {
        // Printed under the lock `end` takes first: never after the last event.
        Mode::Json => print(&event(&s.label, &figures(s, false), false, false)),
        Mode::Bar => {
            w.now = true;
            s.cv.notify_all();
        }
        Mode::Lines | Mode::Silent => {}
    }
}

pub(super) struct Reporter {
    thread: JoinHandle<()>,
    bar: Option<ProgressBar>,
    mode: Mode,
}

pub(super) fn start(shared: &Arc<Shared>, mode: Mode) -> Option<Reporter> {
    if mode == Mode::Silent {
        return None;
    }
    let bar = (mode == Mode::Bar).then(|| {
        let pb = ProgressBar::new(1000);
        style(&pb, false);
        pb.set_prefix(shared.label.clone());
        pb.enable_steady_tick(Duration::from_millis(100));
        pb
    });
    let (s, b) = (shared.clone(), bar.clone());
    // Log lines stay in the caller's span: a daemon run's log keeps them.
    let span = tracing::Span::current();
    let thread = std::thread::Builder::new()
        .name("rewind-progress".into())
        .spawn(move || span.in_scope(|| run(&s, mode, b.as_ref())))
        .ok()?;
    Some(Reporter { thread, bar, mode })
}

fn style(pb: &ProgressBar, with_bar: bool) {
    let tmpl = if with_bar {
        "{spinner} {prefix} [{bar:25}] {wide_msg}"
    } else {
        "{spinner} {prefix} {wide_msg}"
    };
    if let Ok(st) = ProgressStyle::with_template(tmpl) {
        pb.set_style(st.progress_chars("=> "));
    }
}

fn run(s: &Shared, mode: Mode, bar: Option<&ProgressBar>) {
    let tick = if mode == Mode::Bar { BAR_TICK } else { every() };
    let mut next = Instant::now() + tick;
    let mut with_bar = false;
    let mut draw = || {
        let f = figures(s, false);
        match mode {
            Mode::Bar => {
                let Some(pb) = bar else { return };
                if f.percent.is_some() != with_bar {
                    with_bar = f.percent.is_some();
                    style(pb, with_bar);
                }
                if let Some(p) = f.percent {
                    pb.set_position((p * 10.0) as u64);
                }
                pb.set_message(line(s.unit, &f));
            }
            Mode::Json => print(&event(&s.label, &f, false, false)),
            Mode::Lines => {
                tracing::info!(target: "progress", "{}: {}", s.label, line(s.unit, &f));
            }
            Mode::Silent => {}
        }
    };
    let mut wake = s.wake.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if wake.stop {
            return;
        }
        if wake.now {
            wake.now = false;
            drop(wake);
            draw();
        } else {
            let at = Instant::now();
            if at < next {
                wake =
                    s.cv.wait_timeout(wake, next - at)
                        .map(|(w, _)| w)
                        .unwrap_or_else(|e| e.into_inner().0);
                continue;
            }
            drop(wake);
            draw();
            next = Instant::now() + tick;
        }
        wake = s.wake.lock().unwrap_or_else(|e| e.into_inner());
    }
}

/// Stops the reporter and makes the last report: the JSON event with `done` (or `failed`).
pub(super) fn end(s: &Shared, reporter: Option<Reporter>, ok: bool) {
    {
        let mut w = s.wake.lock().unwrap_or_else(|e| e.into_inner());
        w.stop = true;
        s.cv.notify_all();
    }
    let Some(r) = reporter else { return };
    let _ = r.thread.join();
    match r.mode {
        Mode::Json => print(&event(&s.label, &figures(s, ok), ok, !ok)),
        Mode::Bar => {
            if let Some(pb) = r.bar {
                pb.finish_and_clear();
            }
        }
        _ => {}
    }
}

/// One whole line on stderr at once (log lines are written whole too, so they never interleave).
fn print(line: &str) {
    let text = crate::base::redact::redact(line);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(format!("{text}\n").as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figs() -> Figures {
        Figures {
            files_done: 3412,
            files_total: Some(10_000),
            bytes_done: 341 << 20,
            bytes_total: Some(1 << 30),
            percent: Some(33.3),
            bytes_per_second: (120 << 20) as f64,
            files_per_second: 1000.0,
            by_bytes: true,
            eta_seconds: Some(5.2),
            elapsed_seconds: 2.8421,
            scanning: false,
        }
    }

    #[test]
    fn lines_and_events_say_what_the_readme_shows() {
        assert_eq!(
            line(Unit::Files, &figs()),
            "3,412/10,000 files, 341 MiB/1.00 GiB (33%), 120 MiB/s, eta 6s"
        );
        let scanning = Figures {
            scanning: true,
            eta_seconds: None,
            ..figs()
        };
        assert_eq!(
            line(Unit::Files, &scanning),
            "3,412/10,000+ files, 341 MiB/1.00 GiB+ (33%, scanning), 120 MiB/s"
        );
        let items = Figures {
            files_done: 3,
            files_total: Some(10),
            bytes_done: 0,
            bytes_total: None,
            by_bytes: false,
            files_per_second: 0.5,
            eta_seconds: Some(14.0),
            percent: Some(30.0),
            ..figs()
        };
        assert_eq!(
            line(Unit::Items, &items),
            "3/10 items (30%), 0.5 items/s, eta 14s"
        );
        let v: serde_json::Value =
            serde_json::from_str(&event("backup-dir", &figs(), false, false)).unwrap();
        assert_eq!(v["event"], "progress");
        assert_eq!(v["files_total"], 10_000);
        assert_eq!(v["eta_seconds"], 6);
        assert_eq!(v["elapsed_seconds"], 2.842);
        assert_eq!(v.get("failed"), None);
        let v: serde_json::Value = serde_json::from_str(&event("x", &figs(), false, true)).unwrap();
        assert_eq!(
            (v["done"].as_bool(), v["failed"].as_bool()),
            (Some(false), Some(true))
        );
    }

    #[test]
    fn units() {
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(50 << 20), "50.0 MiB");
        assert_eq!(human_secs(83.1), "1m 24s");
        assert_eq!(human_secs(7500.0), "2h 05m");
    }
}
