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
}

pub type SharedStateInfo = Rc<RefCell<StateInfo>>;

/// The state's bookkeeping.
pub fn state_info(lua: &Lua) -> SharedStateInfo {
    lua.app_data_ref::<SharedStateInfo>()
        .map(|s| s.clone())
        .unwrap_or_default()
}
