//! The Lua host: builds Lua states with the `rewind.*` modules, resolves scripts and modules through the
//! search path, checks params and turns errors into messages and exit codes.

pub mod modules;
pub mod params;
pub mod runner;
pub mod script;
pub mod search;
pub mod testing;

pub use crate::base::errors::{UsageError, lua_error};
pub use crate::base::state::{SharedStateInfo, StateInfo, state_info};
pub use search::SearchPath;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use mlua::{Lua, Table, Value};

/// A Lua module's code as one load of a script found it.
#[derive(Clone, Debug)]
pub struct ModuleCode {
    pub chunk_name: String,
    pub code: String,
    pub path: Option<PathBuf>,
}

/// The Lua modules a script required while it loaded, by name. A daemon job runs with exactly these (the
/// job, its script and its modules are one unit): an edit that breaks a module reloads the job, fails, and
/// the last good unit keeps running. Modules first required inside `run` come from the search path.
#[derive(Clone, Debug, Default)]
pub struct ModuleSet(pub Arc<BTreeMap<String, ModuleCode>>);

/// Modules required so far on a state (see `loaded_modules`).
#[derive(Default)]
struct Loaded(RefCell<BTreeMap<String, ModuleCode>>);

/// The Lua modules this state has required so far.
pub fn loaded_modules(lua: &Lua) -> ModuleSet {
    let map = lua
        .app_data_ref::<Loaded>()
        .map(|l| l.0.borrow().clone())
        .unwrap_or_default();
    ModuleSet(Arc::new(map))
}

/// A search path plus everything needed to create fresh Lua states from it.
#[derive(Clone)]
pub struct Host {
    pub search: SearchPath,
}

impl Host {
    pub fn new(search: SearchPath) -> Host {
        Host { search }
    }

    /// A fresh Lua state: standard libraries, a `require` that follows the search path, and the
    /// `rewind.*` modules. Nothing is shared between states.
    pub fn new_state(&self) -> mlua::Result<Lua> {
        self.new_state_with(None)
    }

    /// A fresh state whose `require` takes the modules of `pinned` before the search path.
    pub fn new_state_with(&self, pinned: Option<ModuleSet>) -> mlua::Result<Lua> {
        let lua = Lua::new();
        lua.set_app_data::<SharedStateInfo>(Rc::new(RefCell::new(StateInfo::default())));
        lua.set_app_data::<SearchPath>(self.search.clone());
        lua.set_app_data(pinned.unwrap_or_default());
        lua.set_app_data(Loaded::default());
        install_require(&lua)?;
        Ok(lua)
    }
}

/// Replaces `package.searchers` with: preload, then the search path (user directories, Rust modules,
/// bundled Lua modules). The standard filesystem searchers are dropped so runs do not depend on LUA_PATH.
fn install_require(lua: &Lua) -> mlua::Result<()> {
    let package: Table = lua.globals().get("package")?;
    let searchers: Table = package.get("searchers")?;
    let preload: mlua::Function = searchers.get(1)?;
    let ours = lua.create_function(|lua, name: String| {
        let search = lua
            .app_data_ref::<SearchPath>()
            .map(|s| s.clone())
            .expect("search path set");
        let pinned = lua
            .app_data_ref::<ModuleSet>()
            .and_then(|m| m.0.get(&name).cloned());
        let found = match pinned {
            Some(m) => Some(search::ModuleSource::Lua {
                chunk_name: m.chunk_name,
                code: m.code,
                path: m.path,
            }),
            None => search.find_module(&name),
        };
        match found {
            Some(search::ModuleSource::Lua {
                chunk_name,
                code,
                path,
            }) => {
                if let Some(p) = &path
                    && let Some(info) = lua.app_data_ref::<SharedStateInfo>()
                {
                    info.borrow_mut().loaded_files.push(p.clone());
                }
                let f = lua.load(&code).set_name(&chunk_name).into_function()?;
                if let Some(loaded) = lua.app_data_ref::<Loaded>() {
                    let m = ModuleCode {
                        chunk_name: chunk_name.clone(),
                        code,
                        path,
                    };
                    loaded.0.borrow_mut().insert(name.clone(), m);
                }
                Ok((
                    Value::Function(f),
                    Value::String(lua.create_string(&chunk_name)?),
                ))
            }
            Some(search::ModuleSource::Rust(open)) => {
                let f = lua.create_function(move |lua, _: mlua::MultiValue| open(lua))?;
                Ok((
                    Value::Function(f),
                    Value::String(lua.create_string(format!("[rust] {name}"))?),
                ))
            }
            None => Ok((
                Value::String(lua.create_string(format!(
                    "\n\tno module '{name}' in the search path ({})",
                    search.describe()
                ))?),
                Value::Nil,
            )),
        }
    })?;
    let new = lua.create_table()?;
    new.set(1, preload)?;
    new.set(2, ours)?;
    package.set("searchers", new)?;
    package.set("path", "")?;
    package.set("cpath", "")?;
    Ok(())
}
