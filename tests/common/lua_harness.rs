#![allow(dead_code)] // each fuzz target and test uses a part of the harness
//! One Lua state, made once, that calls rewind's decoders, params and extraction in-process: shared by
//! the property tests (tests/props.rs) and the fuzz targets (fuzz/fuzz_targets/*.rs), so both check the
//! same properties on the same code a user's script reaches.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use mlua::{Function, Lua, Value};
use serde_json::{Map, Value as Json};

use rewind::host::params::{self, ParamSpec};
use rewind::host::{Host, SearchPath};

thread_local! {
    /// Extractions that succeeded and that were refused, so a test can show it exercised both.
    pub static EXTRACTED: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

pub struct Harness {
    rt: tokio::runtime::Runtime,
    lua: Lua,
    funcs: RefCell<HashMap<&'static str, Function>>,
    specs: Vec<ParamSpec>,
}

/// One param of each type (what `rewind run` checks key=value and params files against).
const SPECS: &str = r#"return {
  s = { type = "string", doc = "x" },
  n = { type = "number", doc = "x" },
  i = { type = "integer", doc = "x" },
  b = { type = "boolean", doc = "x" },
  d = { type = "duration", doc = "x" },
  day = { type = "date", doc = "x" },
  l = { type = "list", doc = "x" },
  t = { type = "table", doc = "x" },
  c = { type = "string", choices = { "a", "b" }, doc = "x" },
  ["s3.bucket"] = { type = "string", doc = "x" },
  secret = { type = "string", secret = true, doc = "x" },
}"#;

impl Harness {
    pub fn new() -> Harness {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let host = Host::new(SearchPath::default());
        let lua = {
            let _g = rt.enter();
            host.new_state().unwrap()
        };
        let specs_table = lua.load(SPECS).eval().unwrap();
        let specs = params::parse_specs(&lua, Some(specs_table)).unwrap();
        Harness {
            rt,
            lua,
            funcs: RefCell::new(HashMap::new()),
            specs,
        }
    }

    /// Calls `code` (the body of `function(input, extra) ... end`) with `input` as a Lua string; the
    /// result as JSON, or the error's message.
    pub fn call(&self, code: &'static str, input: &[u8], extra: &str) -> Result<Json, String> {
        let f = {
            let mut funcs = self.funcs.borrow_mut();
            funcs
                .entry(code)
                .or_insert_with(|| {
                    self.lua
                        .load(format!("return function(input, extra)\n{code}\nend"))
                        .eval()
                        .unwrap()
                })
                .clone()
        };
        let input = self.lua.create_string(input).unwrap();
        let local = tokio::task::LocalSet::new();
        let res: mlua::Result<Value> =
            local.block_on(&self.rt, f.call_async((input, extra.to_string())));
        match res {
            Ok(v) => rewind::base::values::from_lua(&self.lua, &v).map_err(|e| e.to_string()),
            Err(e) => Err(rewind::base::errors::Report::from_lua(&e).message),
        }
    }

    /// Checks `key=value` lines and an optional params file (YAML) against one param of each type.
    pub fn params(&self, cli: &[(String, String)], file: Option<&Map<String, Json>>) {
        let res = params::resolve(&self.specs, cli, file, &|_| None);
        if let Ok(values) = res {
            for (k, v) in &values {
                let spec = self
                    .specs
                    .iter()
                    .find(|s| &s.name == k)
                    .expect("a declared param");
                let ok = match spec.ty.name() {
                    "string" | "date" => v.is_string(),
                    "number" | "duration" => v.is_number(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "boolean" => v.is_boolean(),
                    "list" => v.is_array(),
                    _ => true,
                };
                assert!(ok, "param {k} of type {} resolved to {v}", spec.ty.name());
            }
        }
    }

    /// Decodes, encodes and decodes again: bad input is an error, good input is stable.
    pub fn round_trip(&self, format: &'static str, input: &[u8]) {
        let code = match format {
            "json" => JSON_ROUND_TRIP,
            "yaml" => YAML_ROUND_TRIP,
            "msgpack" => MSGPACK_ROUND_TRIP,
            other => panic!("no format {other}"),
        };
        if let Ok(Json::String(problem)) = self.call(code, input, "") {
            panic!("{format} round trip: {problem}");
        }
    }

    /// Parses `body` as the manifest found at `key`: it is refused with a reason, or every key deleting
    /// it may touch lies in the manifest's own directory and its id is the one its key names.
    pub fn manifest(&self, body: &[u8], key: &str) {
        if let Ok(Json::String(problem)) = self.call(MANIFEST, body, key) {
            panic!("manifest at {key}: {problem}");
        }
    }

    /// How many manifests `manifest` accepted and refused so far (a test shows both sides are reached).
    pub fn manifest_counts(&self) -> (i64, i64) {
        let g = self.lua.globals();
        (
            g.get::<Option<i64>>("MANIFESTS_ACCEPTED")
                .unwrap()
                .unwrap_or(0),
            g.get::<Option<i64>>("MANIFESTS_REFUSED")
                .unwrap()
                .unwrap_or(0),
        )
    }

    /// Any text as a store key: `key_id` answers without error, and a key it reads an id from is a
    /// manifest key of that id.
    pub fn snapshot_key(&self, key: &[u8]) {
        if let Ok(Json::String(problem)) = self.call(SNAPSHOT_KEY, key, "") {
            panic!("snapshot key {:?}: {problem}", String::from_utf8_lossy(key));
        }
    }

    /// Extracts `archive` into `<dir>/to`; whatever happens, nothing outside `to` may change.
    pub fn extract_confined(&self, dir: &Path, archive: &[u8]) {
        self.extract_checked(dir, archive, "to", "to");
    }

    /// Extracts into `<dir>/<into>` and checks that nothing outside `<dir>/<confined>` changed (the two
    /// differ only in the test that shows the check catches a write outside).
    pub fn extract_checked(&self, dir: &Path, archive: &[u8], into: &str, confined: &str) {
        let input = dir.join("input.tar");
        let to = dir.join(confined);
        let outside = dir.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "keep").unwrap();
        std::fs::write(&input, archive).unwrap();
        let before = listing(dir, &to);
        let res = self.call(
            "local tar = require('rewind.tar')\nreturn tar.extract({ from = input, to = extra })",
            input.to_str().unwrap().as_bytes(),
            dir.join(into).to_str().unwrap(),
        );
        EXTRACTED.with(|n| {
            let (ok, err) = n.get();
            n.set(if res.is_ok() {
                (ok + 1, err)
            } else {
                (ok, err + 1)
            });
        });
        assert_eq!(
            listing(dir, &to),
            before,
            "extraction changed something outside its destination"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("keep")).unwrap(),
            "keep"
        );
    }
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

/// Every path under `dir` but inside `to`, with its size and link target.
fn listing(dir: &Path, to: &Path) -> Vec<(String, u64, Option<String>)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.path() != to)
        .filter_map(|e| e.ok())
        .map(|e| {
            let md = e.path().symlink_metadata().ok();
            let link = std::fs::read_link(e.path())
                .ok()
                .map(|l| l.display().to_string());
            (
                e.path().display().to_string(),
                md.map(|m| if m.is_file() { m.len() } else { 0 })
                    .unwrap_or(0),
                link,
            )
        })
        .collect();
    out.sort();
    out
}

// Each returns nil when all is well (or the input is rejected with an error), or a string naming what
// broke: a value that decodes but does not survive encode + decode unchanged.
const JSON_ROUND_TRIP: &str = r#"
local json = require("rewind.json")
local ok, v = pcall(json.decode, input)
if not ok then return nil end
local ok2, once = pcall(json.encode, v)
if not ok2 then return "decoded but cannot encode: " .. tostring(once) end
local twice = json.encode(json.decode(once))
if twice ~= once then return "not stable: " .. once .. " then " .. twice end
"#;

const YAML_ROUND_TRIP: &str = r#"
local yaml = require("rewind.yaml")
local json = require("rewind.json")
local ok, v = pcall(yaml.decode, input)
if not ok then return nil end
local ok2, as_json = pcall(json.encode, v)
if not ok2 then return nil end -- YAML can hold what JSON cannot (NaN): not a round-trip question
local ok3, text = pcall(yaml.encode, v)
if not ok3 then return "decoded but cannot encode: " .. tostring(text) end
local again = json.encode(yaml.decode(text))
if again ~= as_json then return "not stable: " .. as_json .. " then " .. again end
"#;

const MSGPACK_ROUND_TRIP: &str = r#"
local msgpack = require("rewind.msgpack")
local json = require("rewind.json")
local ok, v = pcall(msgpack.decode, input)
if not ok then return nil end
local ok2, as_json = pcall(json.encode, v)
if not ok2 then return "decoded but cannot encode: " .. tostring(as_json) end
local again = json.encode(msgpack.decode(msgpack.encode(v)))
if again ~= as_json then return "not stable: " .. as_json .. " then " .. again end
"#;

const MANIFEST: &str = r#"
local snapshot = require("rewind.snapshot")
local key = extra
local ok, m, why = pcall(snapshot.parse, input, key)
if not ok then return "parse raised instead of answering: " .. tostring(m) end
if m == nil then
  if type(why) ~= "string" or why == "" then return "refused without a reason" end
  MANIFESTS_REFUSED = (MANIFESTS_REFUSED or 0) + 1
  return nil
end
MANIFESTS_ACCEPTED = (MANIFESTS_ACCEPTED or 0) + 1
if m.id ~= snapshot.key_id(key) then return "id " .. tostring(m.id) .. " is not the one its key names" end
local keys, kwhy = snapshot.own_keys(m)
if keys == nil then return nil end
local dir = key:match("^(.*/)[^/]*$") or ""
for _, k in ipairs(keys) do
  if k:sub(1, #dir) ~= dir then return "deletes " .. k .. " outside " .. dir end
  for part in k:gmatch("[^/]+") do
    if part == ".." or part == "." then return "deletes " .. k .. " (a dot component)" end
  end
end
"#;

const SNAPSHOT_KEY: &str = r#"
local snapshot = require("rewind.snapshot")
local ok, id = pcall(snapshot.key_id, input)
if not ok then return "key_id raised: " .. tostring(id) end
if type(id) ~= "string" then return "key_id gave a " .. type(id) end
if id:match("^%d%d%d%d%d%d%d%d%-%d%d%d%d%d%d$") and id ~= input then
  local day, hms = id:sub(1, 8), id:sub(10, 15)
  if not input:find(day .. "/manifest_" .. hms .. ".json", 1, true) then
    return "read id " .. id .. " from a key that is not its manifest's"
  end
end
"#;
