//! Progress on long work: a bar when stderr is a terminal, a log line every few seconds otherwise.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mlua::{Lua, Table, UserData, UserDataMethods};

/// 0 = log lines, 1 = bar, 2 = silent.
static MODE: AtomicU8 = AtomicU8::new(0);
const LOG_EVERY: Duration = Duration::from_secs(10);

pub fn set_mode(bar: bool, quiet: bool) {
    MODE.store(
        if quiet {
            2
        } else if bar {
            1
        } else {
            0
        },
        Ordering::Relaxed,
    );
}

pub struct Progress {
    label: String,
    bytes: bool,
    total: Option<u64>,
    bar: Option<ProgressBar>,
    state: Mutex<(u64, Instant, Instant)>,
}

impl Progress {
    pub fn new(label: impl Into<String>, total: Option<u64>, bytes: bool) -> Progress {
        let label = label.into();
        let bar = (MODE.load(Ordering::Relaxed) == 1).then(|| {
            let pb = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let tmpl = match (total.is_some(), bytes) {
                (true, true) => "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                (true, false) => "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
                (false, true) => "{spinner} {msg} {bytes} {bytes_per_sec}",
                (false, false) => "{spinner} {msg} {pos} {per_sec}",
            };
            if let Ok(style) = ProgressStyle::with_template(tmpl) {
                pb.set_style(style.progress_chars("=> "));
            }
            pb.set_message(label.clone());
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        });
        let now = Instant::now();
        Progress {
            label,
            bytes,
            total,
            bar,
            state: Mutex::new((0, now, now)),
        }
    }

    pub fn add(&self, n: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        } else if MODE.load(Ordering::Relaxed) == 0 && st.2.elapsed() >= LOG_EVERY {
            st.2 = Instant::now();
            self.log_line(st.0, st.1.elapsed());
        }
    }

    fn log_line(&self, done: u64, elapsed: Duration) {
        let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
        let fmt = |n: u64| {
            if self.bytes {
                indicatif::HumanBytes(n).to_string()
            } else {
                n.to_string()
            }
        };
        let total = self
            .total
            .map(|t| format!(" of {}", fmt(t)))
            .unwrap_or_default();
        let rate = if self.bytes {
            format!("{}/s", indicatif::HumanBytes(rate as u64))
        } else {
            format!("{rate:.0}/s")
        };
        tracing::info!(target: "progress", "{}: {}{} ({})", self.label, fmt(done), total, rate);
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    pub fn done(&self) -> u64 {
        self.state.lock().map(|s| s.0).unwrap_or(0)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl UserData for Progress {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("add", |_, this, n: Option<u64>| {
            this.add(n.unwrap_or(1));
            Ok(())
        });
        m.add_method("finish", |_, this, ()| {
            this.finish();
            Ok(this.done())
        });
    }
}

/// `rewind.progress`: `progress.new{label=, total=, unit="bytes"|"items"}` → `p:add(n)`, `p:finish()`.
pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "new",
        lua.create_function(|_, opts: Table| {
            let label: Option<String> = opts.get("label")?;
            let total: Option<u64> = opts.get("total")?;
            let unit: Option<String> = opts.get("unit")?;
            Ok(Progress::new(
                label.unwrap_or_else(|| "working".into()),
                total,
                unit.as_deref() == Some("bytes"),
            ))
        })?,
    )?;
    Ok(t)
}
