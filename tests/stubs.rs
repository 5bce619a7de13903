//! Every module a script can require has a LuaLS stub in `stdlib/types/<module>.lua` with one
//! `function M.<name>(` per exported function. The modules come from the binary itself
//! (`rewind list --modules`), so modules added later are checked with no edit here.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rewind");

fn modules() -> Vec<String> {
    let out = Command::new(BIN)
        .args(["list", "--modules"])
        .output()
        .expect("run rewind list --modules");
    assert!(
        out.status.success(),
        "rewind list --modules failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Asks a real run for the function-valued fields of each module.
fn exported(modules: &[String]) -> serde_json::Map<String, serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("exports.lua");
    let list = modules
        .iter()
        .map(|m| format!("{m:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &script,
        format!(
            r#"local json = require("rewind.json")
return {{
  description = "lists the functions each module exports",
  params = {{}},
  run = function()
    local out = {{}}
    for _, name in ipairs({{ {list} }}) do
      local names = json.array()
      for k, v in pairs(require(name)) do
        if type(v) == "function" then names[#names + 1] = k end
      end
      table.sort(names)
      out[name] = names
    end
    return out
  end,
}}
"#
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", script.to_str().unwrap(), "--json"])
        .output()
        .expect("run the export script");
    assert!(
        out.status.success(),
        "export script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).expect("JSON on stdout") {
        serde_json::Value::Object(m) => m,
        other => panic!("expected an object, got {other}"),
    }
}

fn has_stub(stub: &str, name: &str) -> bool {
    let needle = format!(".{name}(");
    stub.lines().any(|l| {
        l.trim_start()
            .strip_prefix("function ")
            .and_then(|rest| rest.find(&needle).map(|i| &rest[..i]))
            .is_some_and(|owner| {
                !owner.is_empty() && owner.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
    })
}

#[test]
fn every_exported_function_has_a_stub() {
    let modules = modules();
    assert!(
        modules.iter().any(|m| m == "rewind.fs") && modules.iter().any(|m| m == "rewind.testing"),
        "unexpected module list: {modules:?}"
    );
    let exports = exported(&modules);
    let types = Path::new(env!("CARGO_MANIFEST_DIR")).join("stdlib/types");
    let mut missing = Vec::new();
    for m in &modules {
        let file = types.join(format!("{m}.lua"));
        let Ok(stub) = std::fs::read_to_string(&file) else {
            missing.push(format!("{m}: no stub file {}", file.display()));
            continue;
        };
        if !stub.trim_start().starts_with("---@meta") {
            missing.push(format!(
                "{m}: {} does not begin with ---@meta",
                file.display()
            ));
        }
        let names = exports
            .get(m)
            .and_then(|v| v.as_array())
            .unwrap_or_else(|| panic!("no exports reported for {m}"));
        for n in names {
            let n = n.as_str().unwrap();
            if !has_stub(&stub, n) {
                missing.push(format!(
                    "{m}.{n}: no `function M.{n}(` in {}",
                    file.display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "exported functions without a LuaLS stub:\n  {}",
        missing.join("\n  ")
    );
}
