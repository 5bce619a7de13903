//! The Lua side of indexed archives: `tar.create{index = ...}`, `tar.compose{...}` and `tar.index{...}`.
//! Options are checked before any sink is taken, so a call refused for its options writes nothing.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use globset::{Glob, GlobSet};
use mlua::{Lua, Table, UserData, Value};

use super::compose::{ComposeOpts, SharedCounts, compose};
use super::create::Compression;
use super::index::{read_entries, summarize};
use super::indexed::{DEFAULT_FRAME, IndexedOpts, create_indexed};
use super::{ProgressOpts, input, output, paths_of, stats_table, usage};
use crate::base::errors::IntoLua;
use crate::base::stream::Reader;
use crate::base::values::to_lua;
use crate::prims::storage::Store;

/// `tar.create` with `index = sink`.
pub(super) async fn create(
    lua: Lua,
    opts: Table,
    compression: Compression,
    level: Option<i32>,
    exclude: Option<GlobSet>,
    popts: ProgressOpts,
) -> mlua::Result<Table> {
    if compression != Compression::Zstd {
        return Err(usage(format!(
            "tar.create: index = ... needs compression = \"zstd\" (frames a restore can read alone), got {:?}",
            opts.get::<Option<String>>("compression")?
                .unwrap_or_default()
        )));
    }
    let object: String = opts
        .get::<Option<String>>("object")?
        .filter(|o| !o.is_empty())
        .ok_or_else(|| {
            usage(
                "tar.create: index = ... needs object = the store key the archive is written to"
                    .into(),
            )
        })?;
    let frame = opts.get::<Option<u64>>("frame")?.unwrap_or(DEFAULT_FRAME);
    if frame == 0 {
        return Err(usage("tar.create: frame must be at least 1 byte".into()));
    }
    let from: Value = opts.get("from")?;
    if matches!(from, Value::UserData(_)) {
        return Err(usage(
            "tar.create: index = ... archives directories and files: from must be paths, not a reader".into(),
        ));
    }
    let paths: Vec<PathBuf> = paths_of(&from)?;
    let parent = match opts.get::<Value>("parent")? {
        Value::Nil => None,
        v => Some(input(&v, "tar.create parent").await?.0),
    };
    let sink = output(&opts.get("to")?, "tar.create: to").await?;
    let index_sink = match output(&opts.get("index")?, "tar.create: index").await {
        Ok(s) => s,
        Err(e) => {
            sink.abort().await;
            return Err(e);
        }
    };
    let label = format!("archiving {}", paths[0].display());
    let iopts = IndexedOpts {
        paths,
        level,
        exclude,
        flat: opts.get::<Option<bool>>("flat")?.unwrap_or(false),
        // One thread by default: frames end every MiB or so, and zstd's workers must finish each frame
        // before the next one starts, so they only added copies and hand-offs (a 1 GiB backup into
        // memory: 1.39-1.53 s on the archiving thread alone, 1.73-1.75 s with two workers).
        workers: opts.get::<Option<u32>>("workers")?.unwrap_or(0),
        object,
        frame,
        parent,
    };
    let done = create_indexed(iopts, sink, index_sink, popts.start(label))
        .await
        .lua_err()?;
    let s = &done.stats;
    let t = stats_table(&lua, &s.stats)?;
    t.set("files_new", s.files_new)?;
    t.set("files_unchanged", s.files_unchanged)?;
    t.set("bytes_new", s.bytes_new)?;
    t.set("bytes_unchanged", s.bytes_unchanged)?;
    t.set("frames", s.frames)?;
    let referenced: Vec<serde_json::Value> =
        s.referenced.iter().map(|k| k.as_str().into()).collect();
    t.set(
        "referenced",
        to_lua(&lua, &serde_json::Value::Array(referenced))?,
    )?;
    t.set(
        "object",
        to_lua(&lua, &serde_json::Value::Object(done.object))?,
    )?;
    t.set(
        "index",
        to_lua(&lua, &serde_json::Value::Object(done.index))?,
    )?;
    Ok(t)
}

/// What a composed stream has given so far: `c.files`, `c.dirs`, `c.symlinks`, `c.bytes`, `c.ranges`,
/// `c.stored_bytes`, `c.done`.
pub struct ComposeCounts(SharedCounts);

impl UserData for ComposeCounts {
    fn add_fields<F: mlua::UserDataFields<Self>>(f: &mut F) {
        fn get<T>(this: &ComposeCounts, g: impl FnOnce(&super::Counts) -> T) -> T {
            g(&this.0.lock().unwrap_or_else(|e| e.into_inner()))
        }
        f.add_field_method_get("files", |_, this| Ok(get(this, |c| c.files)));
        f.add_field_method_get("dirs", |_, this| Ok(get(this, |c| c.dirs)));
        f.add_field_method_get("symlinks", |_, this| Ok(get(this, |c| c.symlinks)));
        f.add_field_method_get("bytes", |_, this| Ok(get(this, |c| c.bytes)));
        f.add_field_method_get("ranges", |_, this| Ok(get(this, |c| c.ranges)));
        f.add_field_method_get("stored_bytes", |_, this| Ok(get(this, |c| c.stored_bytes)));
        f.add_field_method_get("done", |_, this| Ok(get(this, |c| c.done)));
    }
}

/// `tar.compose{store, index, base?, path?}` → reader, counts.
pub(super) async fn tar_compose(_lua: Lua, opts: Table) -> mlua::Result<(Reader, ComposeCounts)> {
    let backend = match opts.get::<Value>("store")? {
        Value::UserData(ud) => ud
            .borrow::<Store>()
            .map(|s| Arc::clone(&s.backend))
            .map_err(|_| usage("tar.compose: store must be a store (rewind.store.open)".into()))?,
        _ => {
            return Err(usage(
                "tar.compose: store = a store (rewind.store.open) is required".into(),
            ));
        }
    };
    let index_v: Value = opts.get("index")?;
    if index_v.is_nil() {
        return Err(usage(
            "tar.compose: index = a reader of the snapshot's index is required".into(),
        ));
    }
    let base: Option<String> = opts.get("base")?;
    let path: Option<String> = opts.get("path")?;
    let (index, label, _) = input(&index_v, "tar.compose index").await?;
    let (reader, counts) = compose(ComposeOpts {
        backend,
        base,
        index,
        path: path.clone(),
    })
    .await
    .with_context(|| format!("composing the snapshot of {label}"))
    .lua_err()?;
    let what = match path {
        Some(p) => format!("'{p}' of the snapshot indexed in {label}"),
        None => format!("the snapshot indexed in {label}"),
    };
    Ok((Reader::new(what, reader), ComposeCounts(counts)))
}

/// `tar.index{index, path?, glob?, summary?}` (or `tar.index(reader)`) → entries (or with `summary`,
/// their counts), header.
pub(super) async fn tar_index(lua: Lua, arg: Value) -> mlua::Result<(Value, Value)> {
    let (index_v, path, glob, summary) = match &arg {
        Value::Table(t) => (
            t.get::<Value>("index")?,
            t.get::<Option<String>>("path")?,
            t.get::<Option<String>>("glob")?,
            t.get::<Option<bool>>("summary")?.unwrap_or(false),
        ),
        other => (other.clone(), None, None, false),
    };
    if index_v.is_nil() {
        return Err(usage(
            "tar.index: index = a reader of an index is required".into(),
        ));
    }
    let glob = match glob {
        Some(g) => Some(
            Glob::new(&g)
                .map_err(|e| usage(format!("tar.index: bad glob '{g}': {e}")))?
                .compile_matcher(),
        ),
        None => None,
    };
    let (r, label, _) = input(&index_v, "tar.index").await?;
    let handle = tokio::runtime::Handle::current();
    let (header, list) = crate::base::blocking::spawn_blocking(move || {
        let _guard = handle.enter();
        let r = tokio_util::io::SyncIoBridge::new(r);
        // A summary is counted as the lines stream by: no list of a million entries in memory.
        if summary {
            let (h, s) = summarize(r, path.as_deref(), glob.as_ref())?;
            Ok((h, serde_json::to_value(s)?))
        } else {
            let (h, e) = read_entries(r, path.as_deref(), glob.as_ref())?;
            Ok::<_, anyhow::Error>((h, serde_json::to_value(e)?))
        }
    })
    .await
    .lua_err()?
    .with_context(|| format!("reading the index {label}"))
    .lua_err()?;
    let header = serde_json::to_value(header).lua_err()?;
    Ok((to_lua(&lua, &list)?, to_lua(&lua, &header)?))
}
