//! The Lua side of `rewind.store`: `store.open(url, opts)` and the `Store` userdata whose methods
//! (put, get, reader, writer, list, head, delete, copy, the conditional get_versioned, create_if_absent,
//! replace_if and delete_if, leftovers, put_cas...) check their keys and hand the work to the backend.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use futures::stream::BoxStream;
use mlua::{Lua, Table, UserData, UserDataMethods, Value};
use serde_json::{Map, Value as Json};
use tokio::io::AsyncReadExt;

use super::{
    Backend, CasInput, CasTarget, Compression, ObjectMeta, Range, check_key, check_prefix,
    default_url, open, open_file_reader, put_cas, put_cas_known,
};
use crate::base::errors::{IntoLua, UsageError, lua_error};
use crate::base::stream::{Reader, Writer, reader_from_value};

/// What `list` and `head` hand to Lua: `{key, size, mtime?, etag?}`.
pub fn meta_json(m: &ObjectMeta) -> Json {
    let mut o = Map::new();
    o.insert("key".into(), Json::String(m.key.clone()));
    o.insert("size".into(), Json::from(m.size));
    if let Some(t) = m.mtime {
        o.insert("mtime".into(), Json::from(t));
    }
    if let Some(e) = &m.etag {
        o.insert("etag".into(), Json::String(e.clone()));
    }
    Json::Object(o)
}

/// The Lua handle of an open store.
pub struct Store {
    pub backend: Arc<dyn Backend>,
}

fn put_report(key: &str, info: &Map<String, Json>) -> Map<String, Json> {
    let mut o = Map::new();
    o.insert("key".into(), Json::String(key.to_string()));
    o.insert(
        "size".into(),
        info.get("bytes").cloned().unwrap_or(Json::from(0)),
    );
    if let Some(e) = info.get("etag") {
        o.insert("etag".into(), e.clone());
    }
    o
}

fn idempotent(opts: &Option<Table>) -> mlua::Result<bool> {
    match opts {
        Some(o) => Ok(o.get::<Option<bool>>("idempotent")?.unwrap_or(false)),
        None => Ok(false),
    }
}

/// After a conditional write found the object changed: the version of what is there when it holds
/// exactly `data` (our own earlier attempt, whose answer was lost and which the retry then met).
async fn own_write(
    backend: &dyn Backend,
    key: &str,
    data: &bytes::Bytes,
) -> anyhow::Result<Option<String>> {
    Ok(backend
        .get_versioned(key)
        .await?
        .filter(|v| v.body == *data)
        .map(|v| v.version))
}

/// `true, version` or `false`.
fn written(lua: &Lua, version: Option<String>) -> mlua::Result<mlua::MultiValue> {
    Ok(match version {
        Some(v) => mlua::MultiValue::from_vec(vec![
            Value::Boolean(true),
            Value::String(lua.create_string(&v)?),
        ]),
        None => mlua::MultiValue::from_vec(vec![Value::Boolean(false)]),
    })
}

struct ListState {
    pages: Option<BoxStream<'static, anyhow::Result<Vec<ObjectMeta>>>>,
    buf: VecDeque<ObjectMeta>,
    done: bool,
}

impl UserData for Store {
    fn add_fields<F: mlua::UserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("url", |_, this| Ok(this.backend.url()));
        f.add_field_method_get("encrypted", |_, this| Ok(this.backend.encrypted()));
    }

    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method(
            "put",
            |lua, this, (key, data, _opts): (String, Value, Option<Table>)| async move {
                check_key(&key).lua_err()?;
                let reader = reader_from_value(&data, "store:put")?;
                let info = this.backend.put(&key, reader).await.lua_err()?;
                crate::base::values::to_lua(&lua, &Json::Object(put_report(&key, &info)))
            },
        );
        m.add_async_method(
            "put_file",
            |lua, this, (key, path): (String, String)| async move {
                check_key(&key).lua_err()?;
                let reader = open_file_reader(std::path::Path::new(&path))
                    .await
                    .lua_err()?;
                let info = this.backend.put(&key, reader).await.lua_err()?;
                crate::base::values::to_lua(&lua, &Json::Object(put_report(&key, &info)))
            },
        );
        m.add_async_method("get", |lua, this, key: String| async move {
            check_key(&key).lua_err()?;
            let mut r = this
                .backend
                .reader(&key, Range::default())
                .await
                .lua_err()?;
            let mut buf = Vec::new();
            r.read_to_end(&mut buf)
                .await
                .with_context(|| format!("reading {}", key))
                .lua_err()?;
            lua.create_string(&buf)
        });
        m.add_async_method(
            "get_file",
            |lua, this, (key, path): (String, String)| async move {
                check_key(&key).lua_err()?;
                let r = this
                    .backend
                    .reader(&key, Range::default())
                    .await
                    .lua_err()?;
                let sink = crate::base::stream::FileSink::create(&path)
                    .await
                    .lua_err()?;
                let info = crate::base::stream::copy_into(r, Box::new(sink))
                    .await
                    .with_context(|| format!("downloading {key} to {path}"))
                    .lua_err()?;
                let mut o = Map::new();
                o.insert("key".into(), Json::String(key));
                o.insert("path".into(), Json::String(path));
                o.insert(
                    "size".into(),
                    info.get("bytes").cloned().unwrap_or(Json::from(0)),
                );
                crate::base::values::to_lua(&lua, &Json::Object(o))
            },
        );
        m.add_async_method(
            "reader",
            |_, this, (key, opts): (String, Option<Table>)| async move {
                check_key(&key).lua_err()?;
                let mut range = Range::default();
                if let Some(o) = opts {
                    range.offset = o.get::<Option<u64>>("offset")?.unwrap_or(0);
                    range.length = o.get::<Option<u64>>("length")?;
                }
                let r = this.backend.reader(&key, range).await.lua_err()?;
                let label = format!("{}/{}", this.backend.url().trim_end_matches('/'), key);
                Ok(Reader::new(label, r))
            },
        );
        m.add_async_method(
            "writer",
            |_, this, (key, _opts): (String, Option<Table>)| async move {
                check_key(&key).lua_err()?;
                let sink = this.backend.writer(&key).await.lua_err()?;
                let label = format!("{}/{}", this.backend.url().trim_end_matches('/'), key);
                Ok(Writer::new(label, sink))
            },
        );
        m.add_method("list", |lua, this, prefix: Option<String>| {
            let prefix = prefix.unwrap_or_default();
            check_prefix(&prefix).lua_err()?;
            let state = Rc::new(RefCell::new(ListState {
                pages: Some(this.backend.list(&prefix)),
                buf: VecDeque::new(),
                done: false,
            }));
            lua.create_async_function(move |lua, ()| {
                let state = state.clone();
                async move {
                    loop {
                        if let Some(m) = state.borrow_mut().buf.pop_front() {
                            return crate::base::values::to_lua(&lua, &meta_json(&m));
                        }
                        if state.borrow().done {
                            return Ok(Value::Nil);
                        }
                        let pages = state.borrow_mut().pages.take();
                        let Some(mut pages) = pages else {
                            return Err(mlua::Error::runtime(
                                "store list iterator used concurrently",
                            ));
                        };
                        let next = pages.next().await;
                        let mut st = state.borrow_mut();
                        st.pages = Some(pages);
                        match next {
                            None => st.done = true,
                            Some(Ok(page)) => st.buf.extend(page),
                            Some(Err(e)) => {
                                st.done = true;
                                return Err(lua_error(e));
                            }
                        }
                    }
                }
            })
        });
        m.add_async_method("head", |lua, this, key: String| async move {
            check_key(&key).lua_err()?;
            match this.backend.head(&key).await.lua_err()? {
                Some(m) => crate::base::values::to_lua(&lua, &meta_json(&m)),
                None => Ok(Value::Nil),
            }
        });
        m.add_async_method("exists", |_, this, key: String| async move {
            check_key(&key).lua_err()?;
            Ok(this.backend.head(&key).await.lua_err()?.is_some())
        });
        m.add_async_method("delete", |_, this, keys: Value| async move {
            let keys: Vec<String> = match keys {
                Value::String(s) => vec![s.to_str()?.to_string()],
                Value::Table(t) => t.sequence_values::<String>().collect::<mlua::Result<_>>()?,
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "store:delete: expected a key or a list of keys, got {}",
                        other.type_name()
                    )));
                }
            };
            for k in &keys {
                check_key(k).lua_err()?;
            }
            this.backend.delete(keys).await.lua_err()
        });
        m.add_async_method("copy", |_, this, (from, to): (String, String)| async move {
            check_key(&from).lua_err()?;
            check_key(&to).lua_err()?;
            this.backend.copy(&from, &to).await.lua_err()
        });
        m.add_async_method("get_versioned", |lua, this, key: String| async move {
            check_key(&key).lua_err()?;
            match this.backend.get_versioned(&key).await.lua_err()? {
                Some(v) => Ok(mlua::MultiValue::from_vec(vec![
                    Value::String(lua.create_string(&v.body)?),
                    Value::String(lua.create_string(&v.version)?),
                ])),
                None => Ok(mlua::MultiValue::from_vec(vec![Value::Nil])),
            }
        });
        m.add_async_method(
            "create_if_absent",
            |lua, this, (key, data, opts): (String, mlua::LuaString, Option<Table>)| async move {
                check_key(&key).lua_err()?;
                let data = bytes::Bytes::copy_from_slice(&data.as_bytes());
                let idempotent = idempotent(&opts)?;
                let mut created = this
                    .backend
                    .create_if_absent(&key, data.clone())
                    .await
                    .lua_err()?;
                if created.is_none() && idempotent {
                    created = own_write(&*this.backend, &key, &data).await.lua_err()?;
                }
                written(&lua, created)
            },
        );
        m.add_async_method(
            "replace_if",
            |lua,
             this,
             (key, data, version, opts): (String, mlua::LuaString, String, Option<Table>)| async move {
                check_key(&key).lua_err()?;
                let data = bytes::Bytes::copy_from_slice(&data.as_bytes());
                let idempotent = idempotent(&opts)?;
                let mut replaced = this
                    .backend
                    .replace_if(&key, data.clone(), &version)
                    .await
                    .lua_err()?;
                if replaced.is_none() && idempotent {
                    replaced = own_write(&*this.backend, &key, &data).await.lua_err()?;
                }
                // The new version, or false.
                match replaced {
                    Some(v) => Ok(Value::String(lua.create_string(&v)?)),
                    None => Ok(Value::Boolean(false)),
                }
            },
        );
        m.add_async_method(
            "delete_if",
            |_, this, (key, version): (String, String)| async move {
                check_key(&key).lua_err()?;
                this.backend.delete_if(&key, &version).await.lua_err()
            },
        );
        m.add_async_method(
            "leftovers",
            |lua, this, (prefix, older_than, opts): (String, f64, Option<Table>)| async move {
                check_prefix(&prefix).lua_err()?;
                if !older_than.is_finite() || older_than < 0.0 {
                    return Err(lua_error(
                        UsageError(format!(
                            "store:leftovers: the age must be a number of seconds >= 0, got {older_than}"
                        ))
                        .into(),
                    ));
                }
                let remove = match &opts {
                    Some(o) => o.get::<Option<bool>>("remove")?.unwrap_or(false),
                    None => false,
                };
                let found = this
                    .backend
                    .leftovers(&prefix, std::time::Duration::from_secs_f64(older_than), remove)
                    .await
                    .lua_err()?;
                let mut o = Map::new();
                o.insert("count".into(), Json::from(found.keys.len()));
                o.insert("bytes".into(), Json::from(found.bytes));
                o.insert("removed".into(), Json::Bool(remove));
                o.insert(
                    "keys".into(),
                    Json::Array(found.keys.into_iter().map(Json::String).collect()),
                );
                crate::base::values::to_lua(&lua, &Json::Object(o))
            },
        );
        m.add_async_method(
            "put_cas",
            |lua, this, (input, opts): (Value, Option<Table>)| async move {
                let (target, sha, size) = cas_opts(opts.as_ref())?;
                let backend = this.backend.clone();
                let out = match (sha, input) {
                    // Known hash: the input (a reader, or a function returning one) is opened only
                    // when the object is not stored yet.
                    (Some(sha), input) => {
                        put_cas_known(backend, &target, &sha, size, || async move {
                            let v = match input {
                                Value::Function(f) => f.call_async::<Value>(()).await?,
                                other => other,
                            };
                            Ok(reader_from_value(&v, "store:put_cas")?)
                        })
                        .await
                        .lua_err()?
                    }
                    (None, input) => {
                        let input = match &input {
                            Value::String(s) => CasInput::Bytes(s.as_bytes().to_vec()),
                            Value::Table(t) => match t.get::<Option<String>>("file")? {
                                Some(p) => CasInput::File(p.into()),
                                None => {
                                    return Err(lua_error(
                                        UsageError(
                                            "store:put_cas: a table input needs file=path".into(),
                                        )
                                        .into(),
                                    ));
                                }
                            },
                            other => CasInput::Reader(reader_from_value(other, "store:put_cas")?),
                        };
                        put_cas(backend, input, &target).await.lua_err()?
                    }
                };
                crate::base::values::to_lua(&lua, &Json::Object(out))
            },
        );
        m.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!("store({})", this.backend.url()))
        });
    }
}

/// put_cas's options: where and how, plus the sha256 (and size) when the caller knows them.
fn cas_opts(opts: Option<&Table>) -> mlua::Result<(CasTarget, Option<String>, Option<u64>)> {
    let get = |k: &str| -> mlua::Result<Option<String>> {
        match opts {
            Some(o) => o.get::<Option<String>>(k),
            None => Ok(None),
        }
    };
    let prefix = get("prefix")?.unwrap_or_default();
    check_prefix(&prefix).lua_err()?;
    let compression = Compression::parse(get("compression")?.as_deref()).lua_err()?;
    let suffix = get("suffix")?.unwrap_or_default();
    if suffix.contains('/') {
        return Err(lua_error(
            UsageError(format!(
                "store:put_cas: suffix {suffix:?} must not contain '/'"
            ))
            .into(),
        ));
    }
    let (size, level) = match opts {
        Some(o) => (
            o.get::<Option<u64>>("size")?,
            o.get::<Option<i32>>("level")?,
        ),
        None => (None, None),
    };
    let target = CasTarget {
        prefix,
        compression,
        level,
        suffix,
    };
    Ok((target, get("sha256")?, size))
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "open",
        lua.create_async_function(
            |lua, (url, opts): (Option<String>, Option<Table>)| async move {
                let url = url.filter(|u| !u.is_empty()).unwrap_or_else(default_url);
                let opts = match opts {
                    Some(o) => match crate::base::values::from_lua(&lua, &Value::Table(o))? {
                        Json::Object(m) => m,
                        _ => Map::new(),
                    },
                    None => Map::new(),
                };
                let backend = open(&url, &opts).await.lua_err()?;
                Ok(Store { backend })
            },
        )?,
    )?;
    t.set(
        "default_url",
        lua.create_function(|_, ()| Ok(default_url()))?,
    )?;
    Ok(t)
}
