//! Per-state bookkeeping kept in the Lua app data: files a state loaded, and its exit hooks.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use mlua::Lua;

/// Per-state bookkeeping kept in the Lua app data.
#[derive(Default)]
pub struct StateInfo {
    /// Files loaded from disk by this state (scripts and modules): the daemon reloads a job when one changes.
    pub loaded_files: Vec<PathBuf>,
    /// Functions registered with `task.on_exit`, run after the script ends, fails or is cancelled.
    pub on_exit: Vec<mlua::RegistryKey>,
    /// Coroutines started with `task.spawn`: they belong to the run and are stopped when it ends.
    pub tasks: Vec<tokio::task::AbortHandle>,
    /// Cancelled by `task.abort(reason)` (a lost lease, say): the runner stops the whole run with `reason`.
    pub abort: tokio_util::sync::CancellationToken,
    pub abort_reason: Option<String>,
    /// Cancelled on the first Ctrl-C or SIGTERM of a script with `drain_on_stop = true`: the script sees
    /// it (`task.stopping()`) and shuts down in its own order instead of being dropped.
    pub stop: tokio_util::sync::CancellationToken,
}

impl StateInfo {
    /// Stops the run: the runner drops the script's future and fails the run with `reason`.
    pub fn abort(&mut self, reason: String) {
        if self.abort_reason.is_none() {
            self.abort_reason = Some(reason);
        }
        self.abort.cancel();
    }
}

pub type SharedStateInfo = Rc<RefCell<StateInfo>>;

/// The state's bookkeeping.
pub fn state_info(lua: &Lua) -> SharedStateInfo {
    lua.app_data_ref::<SharedStateInfo>()
        .map(|s| s.clone())
        .unwrap_or_default()
}
