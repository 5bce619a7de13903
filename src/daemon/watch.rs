//! Watches the jobs directory and the search path directories (debounced, 200 ms) and sends the changed
//! paths to the scheduler.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc::UnboundedSender;

pub type Watcher = notify_debouncer_full::Debouncer<
    notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

pub fn start(
    dirs: &[PathBuf],
    jobs_dir: &Path,
    tx: UnboundedSender<Vec<PathBuf>>,
) -> anyhow::Result<Watcher> {
    let mut debouncer = new_debouncer(
        Duration::from_millis(200),
        Some(Duration::from_millis(50)),
        move |res: DebounceEventResult| match res {
            Ok(events) => {
                let paths: Vec<PathBuf> = events
                    .into_iter()
                    // Our own reads of a file raise access events: only changes count.
                    .filter(|e| {
                        e.event.kind.is_create()
                            || e.event.kind.is_modify()
                            || e.event.kind.is_remove()
                    })
                    .flat_map(|e| e.event.paths)
                    .collect();
                if !paths.is_empty() {
                    let _ = tx.send(paths);
                }
            }
            Err(errs) => {
                for e in errs {
                    tracing::warn!("file watcher: {e}");
                }
            }
        },
    )?;
    for d in dirs {
        if !d.is_dir() {
            continue;
        }
        let mode = if d == jobs_dir {
            RecursiveMode::NonRecursive
        } else {
            RecursiveMode::Recursive
        };
        debouncer
            .watch(d, mode)
            .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", d.display()))?;
    }
    Ok(debouncer)
}
