//! `rewind.tar`: streaming tar archives (zstd, gzip or plain) from directories, files or a reader into a
//! writer, and safe extraction and listing from a reader or a file. Indexed archives (`index = sink`:
//! indexed.rs writes, compose.rs reads, index.rs is their index) let a snapshot store only what changed
//! and a restore read only the frames it needs.
//!
//! Defaults: zstd level 1 with one compression worker per CPU. That matches the reference pipeline
//! `tar -cf - DIR | zstd -1 -T0` in ratio and beats it in time; pass `level` for smaller archives.

mod beneath;
mod compose;
mod create;
mod extract;
mod frames;
mod index;
mod indexed;
mod lua_indexed;
mod scan;
mod unpack;

use std::path::PathBuf;

use anyhow::Context;
use globset::{Glob, GlobSetBuilder};
use mlua::{Lua, Table, Value};

pub use compose::{ComposeOpts, Counts, compose};
pub use create::{Compression, CreateOpts, Source, Stats};
pub use extract::{ExtractStats, ListEntry, Refused, Symlinks};
pub use indexed::{IndexedOpts, IndexedStats, create_indexed};

use crate::base::errors::IntoLua;
use crate::base::stream::{
    BoxReader, BoxSink, FileSink, Reader, reader_from_value, sink_from_value,
};
use crate::prims::progress::{Progress, Unit};

pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

pub use create::create;
pub use extract::{extract, list};

fn workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(2)
}

/// A reader from a Reader userdata, or a local file when given a path string.
async fn input(v: &Value, what: &str) -> mlua::Result<(BoxReader, String, Option<u64>)> {
    match v {
        Value::String(s) => {
            let path = s.to_str()?.to_string();
            let f = tokio::fs::File::open(&path)
                .await
                .with_context(|| format!("opening {path}"))
                .lua_err()?;
            let size = f.metadata().await.ok().map(|m| m.len());
            Ok((Box::pin(f), path, size))
        }
        Value::UserData(ud) => {
            let label = ud
                .borrow::<Reader>()
                .map(|r| r.label.clone())
                .unwrap_or_default();
            Ok((reader_from_value(v, what)?, label, None))
        }
        _ => Err(mlua::Error::runtime(format!(
            "{what}: expected a reader or a file path"
        ))),
    }
}

pub(super) fn usage(msg: String) -> mlua::Error {
    crate::base::errors::lua_error(crate::base::errors::UsageError(msg).into())
}

/// `from` as paths: a list of paths or one path.
fn paths_of(from: &Value) -> mlua::Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = match from {
        Value::Table(t) => t
            .sequence_values::<String>()
            .map(|p| p.map(PathBuf::from))
            .collect::<mlua::Result<_>>()?,
        Value::String(s) => vec![PathBuf::from(s.to_str()?.to_string())],
        _ => {
            return Err(mlua::Error::runtime(
                "tar.create: from must be a list of paths or a path",
            ));
        }
    };
    if paths.is_empty() {
        return Err(mlua::Error::runtime("tar.create: from is empty"));
    }
    Ok(paths)
}

/// A sink from a Writer userdata (taken over), or a local file written atomically.
async fn output(v: &Value, what: &str) -> mlua::Result<BoxSink> {
    match v {
        Value::String(s) => Ok(Box::new(
            FileSink::create(s.to_str()?.to_string()).await.lua_err()?,
        )),
        Value::Nil => Err(mlua::Error::runtime(format!(
            "{what} = writer or path is required"
        ))),
        v => sink_from_value(v, what),
    }
}

/// The `progress = {label, files, bytes}` option: the label shown, and totals known ahead (a snapshot's
/// manifest). Read before anything is opened; the progress itself starts with the work.
struct ProgressOpts {
    label: Option<String>,
    files: Option<u64>,
    bytes: Option<u64>,
}

impl ProgressOpts {
    fn of(opts: &Table, what: &str) -> mlua::Result<ProgressOpts> {
        match opts.get::<Value>("progress")? {
            Value::Nil => Ok(ProgressOpts {
                label: None,
                files: None,
                bytes: None,
            }),
            Value::Table(t) => Ok(ProgressOpts {
                label: t.get("label")?,
                files: t.get("files")?,
                bytes: t.get("bytes")?,
            }),
            _ => Err(usage(format!(
                "{what}: progress must be a table {{label = ..., files = ..., bytes = ...}}"
            ))),
        }
    }

    fn start(self, default_label: String) -> Progress {
        Progress::new(self.label.unwrap_or(default_label), Unit::Files)
            .with_totals(self.files, self.bytes)
    }
}

fn stats_table(lua: &Lua, s: &Stats) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("files", s.files)?;
    t.set("dirs", s.dirs)?;
    t.set("symlinks", s.symlinks)?;
    t.set("skipped", s.skipped)?;
    t.set("bytes_in", s.bytes_in)?;
    t.set("bytes_out", s.bytes_out)?;
    Ok(t)
}

async fn tar_create(lua: Lua, opts: Table) -> mlua::Result<Table> {
    let from: Value = opts.get("from")?;
    let compression = Compression::parse(
        &opts
            .get::<Option<String>>("compression")?
            .unwrap_or_else(|| "zstd".into()),
    )
    .map_err(|e| {
        crate::base::errors::lua_error(
            crate::base::errors::UsageError(format!("tar.create: {e}")).into(),
        )
    })?;
    let level: Option<i32> = opts.get("level")?;
    let mut exclude = None;
    if let Some(globs) = opts.get::<Option<Vec<String>>>("exclude")? {
        let mut b = GlobSetBuilder::new();
        for g in globs {
            b.add(Glob::new(&g).map_err(|e| {
                crate::base::errors::lua_error(
                    crate::base::errors::UsageError(format!(
                        "tar.create: bad exclude glob '{g}': {e}"
                    ))
                    .into(),
                )
            })?);
        }
        exclude = Some(b.build().lua_err()?);
    }
    let popts = ProgressOpts::of(&opts, "tar.create")?;
    if !opts.get::<Value>("index")?.is_nil() {
        return lua_indexed::create(lua, opts, compression, level, exclude, popts).await;
    }
    let label;
    let source = match &from {
        Value::Table(_) | Value::String(_) => {
            let paths = paths_of(&from)?;
            label = format!("archiving {}", paths[0].display());
            Source::Paths(paths)
        }
        Value::UserData(_) => {
            let name: String = opts.get::<Option<String>>("name")?.ok_or_else(|| {
                mlua::Error::runtime("tar.create: a reader source needs name = entry name")
            })?;
            label = format!("archiving {name}");
            Source::Reader {
                reader: reader_from_value(&from, "tar.create from")?,
                name,
                size: opts.get("size")?,
                mode: opts.get::<Option<u32>>("mode")?.unwrap_or(0o644),
            }
        }
        _ => {
            return Err(mlua::Error::runtime(
                "tar.create: from must be a list of paths, a path or a reader",
            ));
        }
    };
    let sink = output(&opts.get("to")?, "tar.create: to").await?;
    let copts = CreateOpts {
        source,
        compression,
        level,
        exclude,
        flat: opts.get::<Option<bool>>("flat")?.unwrap_or(false),
        workers: opts.get::<Option<u32>>("workers")?.unwrap_or_else(workers),
    };
    let (stats, info) = create(copts, sink, popts.start(label)).await.lua_err()?;
    let t = stats_table(&lua, &stats)?;
    t.set(
        "object",
        crate::base::values::to_lua(&lua, &serde_json::Value::Object(info))?,
    )?;
    Ok(t)
}

async fn tar_extract(lua: Lua, opts: Table) -> mlua::Result<Table> {
    let from: Value = opts.get("from")?;
    let to: String = opts
        .get::<Option<String>>("to")?
        .ok_or_else(|| mlua::Error::runtime("tar.extract: to = directory is required"))?;
    let popts = ProgressOpts::of(&opts, "tar.extract")?;
    let (mut reader, label, _) = input(&from, "tar.extract from").await?;
    let sha256: Option<String> = opts.get("sha256")?;
    let size: Option<u64> = opts.get("size")?;
    if sha256.is_some() || size.is_some() {
        let (hr, _) = crate::prims::hash::HashReader::new(reader, label.clone());
        reader = Box::pin(hr.expect(size, sha256));
    }
    let symlinks = match opts.get::<Option<String>>("symlinks")?.as_deref() {
        None | Some("keep") => Symlinks::Keep,
        Some("inside") => Symlinks::Inside,
        Some(other) => {
            return Err(crate::base::errors::lua_error(
                crate::base::errors::UsageError(format!(
                    "tar.extract: symlinks must be 'keep' or 'inside', got '{other}'"
                ))
                .into(),
            ));
        }
    };
    let progress = popts.start(format!("extracting {label}"));
    let s = extract(reader, PathBuf::from(&to), progress, symlinks)
        .await
        .with_context(|| format!("extracting {label} into {to}"))
        .lua_err()?;
    let t = lua.create_table()?;
    t.set("files", s.files)?;
    t.set("dirs", s.dirs)?;
    t.set("symlinks", s.symlinks)?;
    t.set("hardlinks", s.hardlinks)?;
    t.set("bytes", s.bytes)?;
    t.set("compressed_bytes", s.compressed_bytes)?;
    t.set("symlinks_outside", s.symlinks_outside)?;
    let outside = lua.create_table()?;
    for (path, target) in &s.outside {
        let o = lua.create_table()?;
        o.set("path", path.as_str())?;
        o.set("target", target.as_str())?;
        outside.push(o)?;
    }
    outside.set_metatable(Some(mlua::LuaSerdeExt::array_metatable(&lua)))?;
    t.set("outside", outside)?;
    Ok(t)
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("create", lua.create_async_function(tar_create)?)?;
    t.set("extract", lua.create_async_function(tar_extract)?)?;
    t.set(
        "compose",
        lua.create_async_function(lua_indexed::tar_compose)?,
    )?;
    t.set("index", lua.create_async_function(lua_indexed::tar_index)?)?;
    t.set(
        "list",
        lua.create_async_function(|lua, from: Value| async move {
            let (reader, label, _) = input(&from, "tar.list").await?;
            let entries = list(
                reader,
                Progress::new(format!("listing {label}"), Unit::Files),
            )
            .await
            .with_context(|| format!("listing {label}"))
            .lua_err()?;
            crate::base::values::to_lua(&lua, &serde_json::to_value(entries).lua_err()?)
        })?,
    )?;
    Ok(t)
}
