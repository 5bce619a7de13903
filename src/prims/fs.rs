//! `rewind.fs`: local files. Writes are atomic (temp file in the same directory, then rename).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::Context;
use globset::{Glob, GlobMatcher};
use mlua::{Lua, Table, Value};
use tokio::io::AsyncWriteExt;

use crate::base::errors::IntoLua;
pub use crate::base::files::write_atomic;
use crate::base::stream::{FileSink, Reader, Writer};

fn stat_table(lua: &Lua, path: &Path, md: &std::fs::Metadata) -> mlua::Result<Table> {
    use std::os::unix::fs::PermissionsExt;
    let t = lua.create_table()?;
    t.set("path", path.display().to_string())?;
    t.set("size", md.len())?;
    t.set(
        "type",
        if md.is_dir() {
            "dir"
        } else if md.is_symlink() {
            "symlink"
        } else if md.is_file() {
            "file"
        } else {
            "other"
        },
    )?;
    t.set("mode", md.permissions().mode() & 0o7777)?;
    if let Ok(m) = md.modified()
        && let Ok(d) = m.duration_since(UNIX_EPOCH)
    {
        t.set("mtime", d.as_secs_f64())?;
    }
    Ok(t)
}

fn glob(pattern: Option<String>) -> mlua::Result<Option<GlobMatcher>> {
    pattern
        .map(|p| {
            Glob::new(&p)
                .map(|g| g.compile_matcher())
                .map_err(|e| mlua::Error::runtime(format!("bad glob '{p}': {e}")))
        })
        .transpose()
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "read",
        lua.create_async_function(|lua, path: String| async move {
            let data = tokio::fs::read(&path)
                .await
                .with_context(|| format!("reading {path}"))
                .lua_err()?;
            lua.create_string(&data)
        })?,
    )?;
    t.set(
        "write",
        lua.create_async_function(|_, (path, data): (String, mlua::LuaString)| async move {
            let bytes = data.as_bytes().to_vec();
            let mut sink = FileSink::create(&path).await.lua_err()?;
            sink.write_all(&bytes)
                .await
                .with_context(|| format!("writing {path}"))
                .lua_err()?;
            crate::base::stream::finish(Box::new(sink))
                .await
                .with_context(|| format!("writing {path}"))
                .lua_err()?;
            Ok(())
        })?,
    )?;
    t.set(
        "exists",
        lua.create_function(|_, path: String| Ok(std::fs::symlink_metadata(&path).is_ok()))?,
    )?;
    t.set(
        "stat",
        lua.create_function(|lua, path: String| match std::fs::symlink_metadata(&path) {
            Ok(md) => Ok(Value::Table(stat_table(lua, Path::new(&path), &md)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Nil),
            Err(e) => Err(anyhow::Error::new(e).context(format!("stat {path}"))).lua_err(),
        })?,
    )?;
    t.set(
        "mkdir",
        lua.create_function(|_, path: String| {
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {path}"))
                .lua_err()
        })?,
    )?;
    t.set(
        "remove",
        lua.create_function(|_, (path, opts): (String, Option<Table>)| {
            let recursive = opts
                .map(|o| o.get::<Option<bool>>("recursive"))
                .transpose()?
                .flatten()
                .unwrap_or(false);
            let p = Path::new(&path);
            let res = match std::fs::symlink_metadata(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => Err(e),
                Ok(md) if md.is_dir() && recursive => std::fs::remove_dir_all(p),
                Ok(md) if md.is_dir() => std::fs::remove_dir(p),
                Ok(_) => std::fs::remove_file(p),
            };
            res.with_context(|| format!("removing {path}")).lua_err()?;
            Ok(true)
        })?,
    )?;
    t.set(
        "rename",
        lua.create_function(|_, (from, to): (String, String)| {
            std::fs::rename(&from, &to)
                .with_context(|| format!("renaming {from} to {to}"))
                .lua_err()
        })?,
    )?;
    // swap(a, b): exchanges two existing paths in one step (renameat2 RENAME_EXCHANGE): afterwards each
    // name holds what the other held, and at no moment is either missing.
    t.set(
        "swap",
        lua.create_function(|_, (a, b): (String, String)| {
            use rustix::fs::{CWD, RenameFlags, renameat_with};
            renameat_with(CWD, a.as_str(), CWD, b.as_str(), RenameFlags::EXCHANGE)
                .map_err(std::io::Error::from)
                .with_context(|| format!("swapping {a} and {b} (an atomic exchange)"))
                .lua_err()
        })?,
    )?;
    // list(dir, {glob=}): the entries of one directory, sorted by name.
    t.set(
        "list",
        lua.create_function(|lua, (dir, opts): (String, Option<Table>)| {
            let matcher = glob(
                opts.map(|o| o.get::<Option<String>>("glob"))
                    .transpose()?
                    .flatten(),
            )?;
            let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("listing {dir}"))
                .lua_err()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matcher
                        .as_ref()
                        .is_none_or(|m| p.file_name().is_some_and(|n| m.is_match(n)))
                })
                .collect();
            names.sort();
            let out = lua.create_table()?;
            for p in names {
                if let Ok(md) = std::fs::symlink_metadata(&p) {
                    let e = stat_table(lua, &p, &md)?;
                    e.set(
                        "name",
                        p.file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default(),
                    )?;
                    out.push(e)?;
                }
            }
            Ok(out)
        })?,
    )?;
    // walk(dir, {glob=}): an iterator over every entry below dir (depth first, sorted); `rel` is the
    // path relative to dir, which the glob is matched against.
    t.set(
        "walk",
        lua.create_function(|lua, (dir, opts): (String, Option<Table>)| {
            let matcher = glob(
                opts.map(|o| o.get::<Option<String>>("glob"))
                    .transpose()?
                    .flatten(),
            )?;
            let root = PathBuf::from(&dir);
            let mut it = walkdir::WalkDir::new(&root)
                .min_depth(1)
                .sort_by_file_name()
                .into_iter();
            lua.create_function_mut(move |lua, ()| {
                loop {
                    match it.next() {
                        None => return Ok(Value::Nil),
                        Some(Err(e)) => {
                            return Err(anyhow::Error::new(e).context("walking")).lua_err();
                        }
                        Some(Ok(entry)) => {
                            let rel = entry
                                .path()
                                .strip_prefix(&root)
                                .unwrap_or(entry.path())
                                .to_path_buf();
                            if matcher.as_ref().is_some_and(|m| !m.is_match(&rel)) {
                                continue;
                            }
                            let md = entry
                                .path()
                                .symlink_metadata()
                                .with_context(|| format!("stat {}", entry.path().display()))
                                .lua_err()?;
                            let e = stat_table(lua, entry.path(), &md)?;
                            e.set("rel", rel.display().to_string())?;
                            return Ok(Value::Table(e));
                        }
                    }
                }
            })
        })?,
    )?;
    // temp_dir(): a new private directory, removed when the script exits.
    t.set(
        "temp_dir",
        lua.create_function(|lua, prefix: Option<String>| {
            let dir = tempfile::Builder::new()
                .prefix(&format!(
                    "rewind-{}-",
                    prefix.unwrap_or_else(|| "tmp".into())
                ))
                .tempdir()
                .context("creating a temporary directory")
                .lua_err()?;
            let path = dir.path().display().to_string();
            let holder = std::cell::RefCell::new(Some(dir));
            let cleanup = lua.create_function(move |_, ()| {
                holder.borrow_mut().take();
                Ok(())
            })?;
            let key = lua.create_registry_value(cleanup)?;
            crate::base::state::state_info(lua)
                .borrow_mut()
                .on_exit
                .push(key);
            Ok(path)
        })?,
    )?;
    // reader(path) / writer(path): streams other primitives consume.
    t.set(
        "reader",
        lua.create_async_function(|_, path: String| async move {
            let f = tokio::fs::File::open(&path)
                .await
                .with_context(|| format!("opening {path}"))
                .lua_err()?;
            Ok(Reader::new(path, Box::pin(f)))
        })?,
    )?;
    t.set(
        "writer",
        lua.create_async_function(|_, path: String| async move {
            let sink = FileSink::create(&path).await.lua_err()?;
            Ok(Writer::new(path, Box::new(sink)))
        })?,
    )?;
    Ok(t)
}
