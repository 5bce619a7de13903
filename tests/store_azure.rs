//! `rewind.store` against Azurite (Azure Blob Storage emulator from npm).

mod common;

use common::azure::Azurite;
use common::store::{lua_test, result, run_script, text};

const MIB: usize = 1024 * 1024;
const PART: usize = 5 * MIB;

#[test]
fn api_suite_against_azurite() {
    let az = Azurite::start();
    az.create_container("suite");
    let env = vec![
        ("STORE_TEST_URL", "az://suite".to_string()),
        ("STORE_TEST_OPTS", az.opts_json()),
    ];
    let (ok, out) = lua_test("tests/lua/store_remote.lua", &env);
    assert!(ok, "{out}");
}

#[test]
fn multipart_boundaries_and_parallel_ranges() {
    let az = Azurite::start();
    az.create_container("blocks");
    let dir = tempfile::tempdir().unwrap();
    let sizes = [0, PART - 1, PART, PART + 1, 3 * PART + 7];
    for (i, n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*n).map(|j| (j * 31 + i * 7 + j / 4093) as u8).collect();
        std::fs::write(dir.path().join(format!("in{i}")), data).unwrap();
    }
    let script = format!(
        r#"
local store = require("rewind.store")
local json = require("rewind.json")
local env = require("rewind.env")
return {{ description = "blocks", params = {{}}, run = function()
  local opts = json.decode(env.get("AZ_OPTS"))
  local s = store.open("az://blocks/p", opts)
  local out = {{}}
  for i = 0, {last} do
    local put = s:put_file("f" .. i, "in" .. i)
    s:get_file("f" .. i, "out" .. i)
    out[#out + 1] = {{ put = put.size, head = s:head("f" .. i).size }}
  end
  return out
end }}
"#,
        last = sizes.len() - 1
    );
    let out = run_script(dir.path(), &script, &[("AZ_OPTS", az.opts_json())]);
    assert!(out.status.success(), "{}", text(&out));
    let res = result(&out);
    for (i, n) in sizes.iter().enumerate() {
        assert_eq!(res[i]["put"], *n as u64);
        assert_eq!(res[i]["head"], *n as u64);
        let src = std::fs::read(dir.path().join(format!("in{i}"))).unwrap();
        let got = std::fs::read(dir.path().join(format!("out{i}"))).unwrap();
        assert!(src == got, "{n} bytes differ after the round trip");
    }
}

#[test]
fn connection_string_from_env_and_secrets_never_shown() {
    let az = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    // The container does not exist: a permanent error naming container and key, without the key.
    let script = r#"
local store = require("rewind.store")
return { description = "x", params = {}, run = function()
  store.open("az://missing-container/pre"):put("k/obj.bin", "data")
end }
"#;
    let out = run_script(
        dir.path(),
        script,
        &[("AZURE_STORAGE_CONNECTION_STRING", az.connection_string())],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("missing-container"), "{all}");
    assert!(all.contains("pre/k/obj.bin"), "{all}");
    assert!(!all.contains(common::azure::KEY), "{all}");
}
