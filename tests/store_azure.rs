//! `rewind.store` against Azurite (Azure Blob Storage emulator from npm).

mod common;

use common::azure::Azurite;
use common::process::text;
use common::store::{lua_test, result, run_script};

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

#[test]
fn delete_batches_many_keys_and_skips_missing_ones() {
    let az = Azurite::start_with_debug_log();
    az.create_container("batch");
    let dir = tempfile::tempdir().unwrap();
    // 400 objects; delete the 300 whose number is not a multiple of 4, plus 40 keys that never existed
    // (340 keys: two Blob Batch requests of at most 256).
    let script = r#"
local store = require("rewind.store")
local json = require("rewind.json")
local env = require("rewind.env")
return { description = "batch delete", params = {}, run = function()
  local s = store.open("az://batch/d", json.decode(env.get("AZ_OPTS")))
  local doomed = {}
  for i = 1, 400 do
    local k = string.format("o/%04d", i)
    s:put(k, "x")
    if i % 4 ~= 0 then doomed[#doomed + 1] = k end
    if i % 10 == 0 then doomed[#doomed + 1] = string.format("o/missing-%04d", i) end
  end
  local deleted = s:delete(doomed)
  local left = {}
  for o in s:list("o/") do left[#left + 1] = o.key end
  return { requested = #doomed, deleted = deleted, left = left,
           again = s:delete({ "o/0001", "o/0002", "o/missing-0010" }) }
end }
"#;
    let out = run_script(dir.path(), script, &[("AZ_OPTS", az.opts_json())]);
    assert!(out.status.success(), "{}", text(&out));
    let res = result(&out);
    assert_eq!(res["requested"], 340);
    assert_eq!(res["deleted"], 300, "missing keys are not counted");
    let left: Vec<String> = res["left"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (1..=400)
        .filter(|i| i % 4 == 0)
        .map(|i| format!("o/{i:04}"))
        .collect();
    assert_eq!(left, expected, "exactly the requested keys are gone");
    assert_eq!(res["again"], 0, "deleting deleted keys deletes nothing");
    // 340 keys in 2 batch requests, then 1 for the 3 keys.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(az.requests("POST", "comp=batch"), 3);
}

#[test]
fn delete_failures_name_container_and_key() {
    let az = Azurite::start();
    az.create_container("perm");
    let dir = tempfile::tempdir().unwrap();
    // A SAS that may read, write and list but not delete: every sub-request of the batch is refused.
    let sas = az.container_sas("perm", "rwl");
    let script = r#"
local store = require("rewind.store")
local json = require("rewind.json")
local env = require("rewind.env")
return { description = "delete failures", params = {}, run = function()
  local opts = json.decode(env.get("AZ_OPTS"))
  local s = store.open("az://perm/pre", { account = opts.account, endpoint = opts.endpoint,
                                          sas_token = env.get("AZ_SAS") })
  s:put("a/1", "x")
  s:put("a/2", "y")
  local ok, err = pcall(s.delete, s, { "a/1", "a/2", "a/missing" })
  local gone = store.open("az://no-such-container/pre", opts)
  local ok2, err2 = pcall(gone.delete, gone, { "k/1", "k/2" })
  local ok3, err3 = pcall(gone.exists, gone, "k/1")
  return { ok = ok, err = tostring(err), kept = s:exists("a/1") and s:exists("a/2"),
           ok2 = ok2, err2 = tostring(err2), ok3 = ok3, err3 = tostring(err3) }
end }
"#;
    let t0 = std::time::Instant::now();
    let out = run_script(
        dir.path(),
        script,
        &[("AZ_OPTS", az.opts_json()), ("AZ_SAS", sas.clone())],
    );
    assert!(out.status.success(), "{}", text(&out));
    let res = result(&out);
    let err = res["err"].as_str().unwrap();
    assert_eq!(res["ok"], false);
    assert!(err.contains("az://perm/pre/a/1"), "{err}");
    assert!(err.contains("403"), "{err}");
    let sig = sas.split("sig=").nth(1).unwrap().split('&').next().unwrap();
    assert!(
        !text(&out).contains(sig),
        "the SAS signature is never shown"
    );
    assert_eq!(res["kept"], true);
    // A missing container is an error, not "nothing to delete" or "absent".
    let err2 = res["err2"].as_str().unwrap();
    assert_eq!(res["ok2"], false);
    assert!(err2.contains("ContainerNotFound"), "{err2}");
    assert!(err2.contains("az://no-such-container/pre/k/"), "{err2}");
    let err3 = res["err3"].as_str().unwrap();
    assert_eq!(res["ok3"], false);
    assert!(err3.contains("ContainerNotFound"), "{err3}");
    assert!(
        t0.elapsed().as_secs() < 20,
        "permanent errors are not retried"
    );
}

/// A blob endpoint that reads each request, then resets the connection without answering: a batch
/// lost in transport. Returns the port and the number of requests seen.
fn resetting_endpoint() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // The head, then as many body bytes as Content-Length says.
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            seen2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // SO_LINGER 0: close with a reset rather than an orderly shutdown.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &linger as *const libc::linger as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            drop(s);
        }
    });
    (port, seen)
}

#[test]
fn batch_lost_in_transport_is_sent_again_then_fails_naming_the_keys() {
    let (port, seen) = resetting_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
local store = require("rewind.store")
return {{ description = "reset", params = {{}}, run = function()
  local s = store.open("az://fake/pre", {{ account = "{account}", access_key = "{key}",
                                          endpoint = "http://127.0.0.1:{port}/{account}" }})
  s:delete({{ "a", "b" }})
end }}
"#,
        account = common::azure::ACCOUNT,
        key = common::azure::KEY,
    );
    let t0 = std::time::Instant::now();
    let out = run_script(dir.path(), &script, &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("BlobBatch az://fake/pre/a and 1 more keys"),
        "{all}"
    );
    // object_store does not resend a POST that may have arrived; rewind does, 4 times, with backoff.
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 5, "{all}");
    assert!(t0.elapsed().as_secs() < 30, "{:?}", t0.elapsed());
}
