//! Progress of long work, in figures people can plan with: files and bytes done of the total, percentage,
//! rate and ETA. A bar when stderr is a terminal, a log line every 10 s otherwise (`REWIND_PROGRESS_EVERY`),
//! JSON events on stderr with `run --json` or `--log-format json`, nothing with -q (report.rs draws them).
//!
//! Counting is relaxed atomic adds on shared counters (`Counter`, handed to the threads that do the work);
//! one reporter thread per progress reads them on its own schedule, so the work never waits on output.
//! Totals are given (a restore knows them from the snapshot's manifest) or come from a scan that runs
//! beside the work (`Scan`, archive/scan.rs): until it ends they grow and the figures say "scanning".

mod report;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use mlua::{Lua, Table, UserData, UserDataMethods};

pub use report::Figures;

/// How progress is shown, for the whole process (set once by the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Lines = 0,
    Bar = 1,
    Silent = 2,
    Json = 3,
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Lines as u8);

pub fn set_mode(bar: bool, quiet: bool) {
    let m = if quiet {
        Mode::Silent
    } else if bar {
        Mode::Bar
    } else {
        Mode::Lines
    };
    MODE.store(m as u8, Ordering::Relaxed);
}

/// JSON progress events on stderr (`run --json`, `--log-format json`); -q still silences them.
pub fn set_json() {
    let _ = MODE.compare_exchange(
        Mode::Lines as u8,
        Mode::Json as u8,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let _ = MODE.compare_exchange(
        Mode::Bar as u8,
        Mode::Json as u8,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
}

pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Bar,
        2 => Mode::Silent,
        3 => Mode::Json,
        _ => Mode::Lines,
    }
}

/// What the count of things is called in lines: files (archives) or items (a script's own progress).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Files,
    Items,
}

const UNKNOWN: u64 = u64::MAX;

pub(crate) struct Shared {
    label: String,
    unit: Unit,
    mode: Mode,
    files_done: AtomicU64,
    /// Bytes done: those read or written plus those of unchanged files, which count as done at once.
    bytes_done: AtomicU64,
    /// Bytes read or written only: the rate and the ETA go by these.
    bytes_moved: AtomicU64,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    /// Bytes of the total that the scan found unchanged: they will not be read, so the ETA leaves them out.
    bytes_unchanged_total: AtomicU64,
    scanning: AtomicBool,
    /// The totals are a scan's estimate: at a good end they become what was done.
    estimated: AtomicBool,
    ended: AtomicBool,
    start: Instant,
    wake: Mutex<Wake>,
    cv: Condvar,
}

#[derive(Default)]
struct Wake {
    stop: bool,
    /// Redraw the bar now (the totals became known).
    now: bool,
}

impl Shared {
    fn total(a: &AtomicU64) -> Option<u64> {
        Some(a.load(Ordering::Relaxed)).filter(|&t| t != UNKNOWN)
    }
}

/// The counting side of a progress, for the threads doing the work.
#[derive(Clone)]
pub struct Counter(Arc<Shared>);

impl Counter {
    /// Bytes read or written.
    pub fn add_bytes(&self, n: u64) {
        self.0.bytes_done.fetch_add(n, Ordering::Relaxed);
        self.0.bytes_moved.fetch_add(n, Ordering::Relaxed);
    }

    /// One more file (or item) done; its bytes go through `add_bytes`.
    pub fn add_file(&self) {
        self.add_files(1);
    }

    pub fn add_files(&self, n: u64) {
        self.0.files_done.fetch_add(n, Ordering::Relaxed);
    }

    /// A file done without reading it (unchanged since the parent snapshot).
    pub fn add_unchanged(&self, bytes: u64) {
        self.0.files_done.fetch_add(1, Ordering::Relaxed);
        self.0.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The totals now come from a scan: zero and growing, shown as "scanning" until `Scan::done`.
    pub fn scan(&self) -> Scan {
        let s = &self.0;
        s.files_total.store(0, Ordering::Relaxed);
        s.bytes_total.store(0, Ordering::Relaxed);
        s.estimated.store(true, Ordering::Relaxed);
        s.scanning.store(true, Ordering::Relaxed);
        Scan(self.0.clone())
    }

    /// Whether the figures are shown at all (not with -q): a scan for totals nobody sees is not made.
    pub fn shown(&self) -> bool {
        self.0.mode != Mode::Silent
    }

    pub fn has_totals(&self) -> bool {
        Shared::total(&self.0.files_total).is_some() || Shared::total(&self.0.bytes_total).is_some()
    }

    /// Totals known ahead (a snapshot's manifest, a reader's size).
    pub fn set_totals(&self, files: Option<u64>, bytes: Option<u64>) {
        let s = &self.0;
        s.files_total
            .store(files.unwrap_or(UNKNOWN), Ordering::Relaxed);
        s.bytes_total
            .store(bytes.unwrap_or(UNKNOWN), Ordering::Relaxed);
        s.estimated.store(false, Ordering::Relaxed);
        report::known(s);
    }
}

/// A scan's way of adding to the totals.
#[derive(Clone)]
pub struct Scan(Arc<Shared>);

impl Scan {
    pub fn add(&self, files: u64, bytes: u64, unchanged_bytes: u64) {
        if self.stopped() {
            return;
        }
        let s = &self.0;
        s.files_total.fetch_add(files, Ordering::Relaxed);
        s.bytes_total.fetch_add(bytes, Ordering::Relaxed);
        s.bytes_unchanged_total
            .fetch_add(unchanged_bytes, Ordering::Relaxed);
    }

    /// The work ended (well or not): the scan has nothing more to do.
    pub fn stopped(&self) -> bool {
        self.0.ended.load(Ordering::Relaxed)
    }

    /// The totals are complete.
    pub fn done(&self) {
        if !self.stopped() {
            self.0.scanning.store(false, Ordering::Relaxed);
            report::known(&self.0);
        }
    }
}

/// A progress display. `finish` ends it as done; dropped unfinished, it ends as failed.
pub struct Progress {
    shared: Arc<Shared>,
    reporter: Option<report::Reporter>,
    finished: bool,
}

impl Progress {
    pub fn new(label: impl Into<String>, unit: Unit) -> Progress {
        let mode = mode();
        let shared = Arc::new(Shared {
            label: label.into(),
            unit,
            mode,
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            bytes_moved: AtomicU64::new(0),
            files_total: AtomicU64::new(UNKNOWN),
            bytes_total: AtomicU64::new(UNKNOWN),
            bytes_unchanged_total: AtomicU64::new(0),
            scanning: AtomicBool::new(false),
            estimated: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            start: Instant::now(),
            wake: Mutex::new(Wake::default()),
            cv: Condvar::new(),
        });
        let reporter = report::start(&shared, mode);
        Progress {
            shared,
            reporter,
            finished: false,
        }
    }

    /// With totals known ahead (`None`: not known).
    pub fn with_totals(self, files: Option<u64>, bytes: Option<u64>) -> Progress {
        if files.is_some() || bytes.is_some() {
            self.counter().set_totals(files, bytes);
        }
        self
    }

    pub fn counter(&self) -> Counter {
        Counter(self.shared.clone())
    }

    /// The figures now (what the next report would show).
    pub fn figures(&self) -> Figures {
        report::figures(&self.shared, false)
    }

    /// Ends the progress as done: estimated or unknown totals become what was done, and the last report
    /// (the JSON event with `"done": true`) is made before this returns.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let s = &self.shared;
        s.ended.store(true, Ordering::Relaxed);
        if s.estimated.load(Ordering::Relaxed) || !self.counter().has_totals() {
            s.files_total
                .store(s.files_done.load(Ordering::Relaxed), Ordering::Relaxed);
            s.bytes_total
                .store(s.bytes_done.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        s.scanning.store(false, Ordering::Relaxed);
        report::end(s, self.reporter.take(), true);
    }

    /// Ends the progress as failed (the last JSON event has `"failed": true`); dropping it does too.
    pub fn fail(&mut self) {
        if !self.finished {
            self.finished = true;
            self.shared.ended.store(true, Ordering::Relaxed);
            report::end(&self.shared, self.reporter.take(), false);
        }
    }

    pub fn files_done(&self) -> u64 {
        self.shared.files_done.load(Ordering::Relaxed)
    }

    pub fn bytes_done(&self) -> u64 {
        self.shared.bytes_done.load(Ordering::Relaxed)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.fail();
    }
}

/// `rewind.progress`'s object: counts items, or bytes with `unit = "bytes"`.
struct LuaProgress {
    progress: Progress,
    bytes: bool,
}

impl UserData for LuaProgress {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("add", |_, this, n: Option<u64>| {
            let c = this.progress.counter();
            let n = n.unwrap_or(1);
            if this.bytes {
                c.add_bytes(n);
            } else {
                c.add_files(n);
            }
            Ok(())
        });
        m.add_method_mut("finish", |_, this, ok: Option<bool>| {
            if ok == Some(false) {
                this.progress.fail();
            } else {
                this.progress.finish();
            }
            Ok(if this.bytes {
                this.progress.bytes_done()
            } else {
                this.progress.files_done()
            })
        });
    }
}

/// `rewind.progress`: `progress.new{label=, total=, unit="bytes"|"items"}` → `p:add(n)`, `p:finish(ok)`.
pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "new",
        lua.create_function(|_, opts: Table| {
            let label: Option<String> = opts.get("label")?;
            let total: Option<u64> = opts.get("total")?;
            let bytes = opts.get::<Option<String>>("unit")?.as_deref() == Some("bytes");
            let p = Progress::new(label.unwrap_or_else(|| "working".into()), Unit::Items);
            let p = if bytes {
                p.with_totals(None, total)
            } else {
                p.with_totals(total, None)
            };
            Ok(LuaProgress { progress: p, bytes })
        })?,
    )?;
    Ok(t)
}
