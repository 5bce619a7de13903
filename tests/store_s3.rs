//! `rewind.store` against a real S3-protocol server (moto, see tests/common/s3.rs) and the same API
//! suite against the local backend.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Instant;

use common::process::text;
use common::s3::S3Server;
use common::store::{lua_test, result, run_script};

const MIB: usize = 1024 * 1024;
const PART: usize = 5 * MIB;

fn env_with(server: &S3Server, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = server.env();
    env.extend(extra.iter().cloned());
    env
}

/// Deterministic pseudo-random bytes (xorshift), so that misplaced parts change the content.
fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

#[test]
fn api_suite_against_local_backend() {
    let (ok, out) = lua_test("tests/lua/store_local_test.lua", &[]);
    assert!(ok, "{out}");
}

#[test]
fn api_suite_against_s3() {
    let server = S3Server::start();
    server.create_bucket("suite");
    let env = env_with(
        &server,
        &[
            ("STORE_TEST_URL", "s3://suite".into()),
            ("STORE_TEST_OPTS", format!("{{\"part_size\": {PART}}}")),
        ],
    );
    let (ok, out) = lua_test("tests/lua/store_remote.lua", &env);
    assert!(ok, "{out}");
    assert_eq!(server.multipart_uploads("suite"), 0);
}

#[test]
fn multipart_boundaries() {
    let server = S3Server::start();
    server.create_bucket("multipart");
    let dir = tempfile::tempdir().unwrap();
    let sizes = [0, PART - 1, PART, PART + 1, 3 * PART, 3 * PART + 7];
    for (i, n) in sizes.iter().enumerate() {
        std::fs::write(dir.path().join(format!("in{i}")), data(*n, i as u64 + 1)).unwrap();
    }
    let script = format!(
        r#"
local store = require("rewind.store")
local fs = require("rewind.fs")
return {{ description = "multipart boundaries", params = {{}}, run = function()
  local s = store.open("s3://multipart/b", {{ part_size = {PART}, concurrency = 4 }})
  local one = store.open("s3://multipart/b", {{ part_size = {PART}, concurrency = 1 }})
  local out = {{}}
  for i = 0, {last} do
    local put = s:put_file("f" .. i, "in" .. i)
    local streamed = s:put("r" .. i, fs.reader("in" .. i))
    s:get_file("f" .. i, "out" .. i)            -- parallel ranged GETs when > 1 part
    one:get_file("r" .. i, "stream" .. i)       -- one streamed GET
    local mid = s:reader("f" .. i, {{ offset = {PART} - 3, length = 6 }}):read_all()
    out[#out + 1] = {{ put = put.size, streamed = streamed.size, head = s:head("f" .. i).size,
                      etag = put.etag, mid = #mid }}
  end
  return out
end }}
"#,
        last = sizes.len() - 1
    );
    let out = run_script(dir.path(), &script, &server.env());
    assert!(out.status.success(), "{}", text(&out));
    let res = result(&out);
    for (i, n) in sizes.iter().enumerate() {
        let r = &res[i];
        assert_eq!(r["put"], *n as u64, "size {n}");
        assert_eq!(r["streamed"], *n as u64, "size {n}");
        assert_eq!(r["head"], *n as u64, "size {n}");
        let src = std::fs::read(dir.path().join(format!("in{i}"))).unwrap();
        let got = std::fs::read(dir.path().join(format!("out{i}"))).unwrap();
        assert!(src == got, "ranged download of {n} bytes differs");
        let got = std::fs::read(dir.path().join(format!("stream{i}"))).unwrap();
        assert!(src == got, "streamed download of {n} bytes differs");
        let expect_mid = n.saturating_sub(PART - 3).min(6);
        assert_eq!(
            r["mid"], expect_mid as u64,
            "range across the part boundary, size {n}"
        );
        // Multipart ETags end in -<parts>; single PUTs do not.
        let etag = r["etag"].as_str().unwrap_or("");
        if *n >= PART {
            assert!(etag.contains('-'), "size {n} should be multipart: {etag}");
        } else {
            assert!(!etag.contains('-'), "size {n} should be one PUT: {etag}");
        }
    }
    assert!(res[4]["etag"].as_str().unwrap().ends_with("-3"));
    assert_eq!(server.multipart_uploads("multipart"), 0);
}

#[test]
fn one_gib_streams_with_bounded_rss() {
    let server = S3Server::start();
    server.create_bucket("big");
    let generator = "openssl enc -aes-128-ctr -nosalt -pass pass:rewind -pbkdf2 -in /dev/zero 2>/dev/null | head -c 1073741824";
    let expected = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{generator} | sha256sum"))
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout)[..64].to_string();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
local store = require("rewind.store")
local exec = require("rewind.exec")
local fs = require("rewind.fs")
return {{ description = "1 GiB", params = {{}}, run = function()
  local up = store.open("s3://big/p")
  local gen = exec.spawn({{ "sh", "-c", {generator:?} }})
  local put = up:put("big.bin", gen:stdout())
  gen:wait()
  -- moto reads a whole object to answer any ranged GET, so download with one streamed GET here.
  local down = store.open("s3://big/p", {{ concurrency = 1 }})
  local sum = exec.run({{ "sha256sum", stdin = down:reader("big.bin") }})
  local status = fs.read("/proc/self/status")
  return {{ size = put.size, etag = put.etag, sha256 = sum.stdout:sub(1, 64),
           hwm_kb = tonumber(status:match("VmHWM:%s*(%d+)")) }}
end }}
"#
    );
    let t0 = Instant::now();
    let out = run_script(dir.path(), &script, &server.env());
    assert!(out.status.success(), "{}", text(&out));
    let res = result(&out);
    let hwm_mb = res["hwm_kb"].as_u64().unwrap() / 1024;
    eprintln!(
        "1 GiB through S3: peak RSS {hwm_mb} MB, {:.1}s, etag {}",
        t0.elapsed().as_secs_f64(),
        res["etag"]
    );
    assert_eq!(res["size"], 1u64 << 30);
    assert_eq!(res["sha256"].as_str().unwrap(), expected);
    assert!(hwm_mb < 150, "peak RSS {hwm_mb} MB");
    assert!(
        res["etag"].as_str().unwrap().ends_with("-128"),
        "8 MiB parts"
    );
    assert_eq!(server.multipart_uploads("big"), 0);
}

/// An HTTP server whose answer announces 32 MiB but is cut off after 12 MiB: a reader that fails midway.
fn truncating_http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                32 * MIB
            );
            let chunk = vec![7u8; MIB];
            for _ in 0..12 {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = s.flush();
            drop(s);
        }
    });
    port
}

#[test]
fn failed_or_dropped_uploads_are_aborted() {
    aborted_uploads_leave_nothing("");
}

/// The same through the encrypting store: its writer is a pipeline (encryptor thread, pump task), and a
/// failed, dropped or aborted one must still leave no object and no multipart upload.
#[test]
fn failed_or_dropped_encrypted_uploads_are_aborted() {
    let id = age::x25519::Identity::generate();
    aborted_uploads_leave_nothing(&format!(", recipients = \"{}\"", id.to_public()));
}

fn aborted_uploads_leave_nothing(open_opts: &str) {
    let server = S3Server::start();
    server.create_bucket("aborts");
    let port = truncating_http_server();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
local store = require("rewind.store")
local http = require("rewind.http")
local task = require("rewind.task")
return {{ description = "abort", params = {{}}, run = function()
  local s = store.open("s3://aborts/x", {{ part_size = {PART}{open_opts} }})
  local resp = http.get("http://127.0.0.1:{port}/data", {{ stream = true }})
  local ok, err = pcall(s.put, s, "failed.bin", resp.reader)
  -- a writer that is dropped without close
  local w = s:writer("dropped.bin")
  w:write(string.rep("y", 7 * 1024 * 1024))
  w = nil
  collectgarbage(); collectgarbage()
  -- a writer explicitly aborted after a part was sent
  local w2 = s:writer("aborted.bin")
  w2:write(string.rep("z", 11 * 1024 * 1024))
  w2:abort()
  task.sleep(1)
  local keys = {{}}
  for o in s:list() do keys[#keys + 1] = o.key end
  return {{ ok = ok, err = tostring(err), exists = s:exists("failed.bin"), n = #keys }}
end }}
"#
    );
    let out = run_script(dir.path(), &script, &server.env());
    assert!(out.status.success(), "{}", text(&out));
    let res = result(&out);
    assert_eq!(res["ok"], false);
    assert_eq!(res["exists"], false);
    assert_eq!(res["n"], 0, "no visible object");
    assert_eq!(
        server.multipart_uploads("aborts"),
        0,
        "no multipart upload left"
    );
}

#[test]
fn conditional_create_race_between_processes() {
    let server = S3Server::start();
    server.create_bucket("race");
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
local store = require("rewind.store")
local env = require("rewind.env")
return { description = "race", params = {}, run = function()
  local s = store.open("s3://race/locks")
  local won = {}
  for i = 1, 30 do
    if s:create_if_absent("lock" .. i, env.get("WHO")) then won[#won + 1] = i end
  end
  return { won = won }
end }
"#;
    std::fs::write(dir.path().join("script.lua"), script).unwrap();
    let spawn = |who: &str| {
        let mut cmd = std::process::Command::new(common::process::BIN);
        cmd.args(["run", "script.lua", "--json"])
            .current_dir(dir.path())
            .env("WHO", who)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in server.env() {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    };
    let a = spawn("a");
    let b = spawn("b");
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    let won = |o: &std::process::Output| -> Vec<u64> {
        result(o)["won"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default()
    };
    let (wa, wb) = (won(&a), won(&b));
    for i in 1..=30u64 {
        assert!(
            wa.contains(&i) ^ wb.contains(&i),
            "lock{i}: exactly one process must win (a: {wa:?}, b: {wb:?})"
        );
    }
}

#[test]
fn permanent_errors_name_bucket_and_key_and_fail_fast() {
    let server = S3Server::start();
    server.create_bucket("perm");
    let dir = tempfile::tempdir().unwrap();
    // A missing bucket.
    let script = r#"
local store = require("rewind.store")
return { description = "x", params = {}, run = function()
  store.open("s3://no-such-bucket/pre"):put("some/key.txt", "data")
end }
"#;
    let t0 = Instant::now();
    let out = run_script(dir.path(), script, &server.env());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr.contains("no-such-bucket"), "{stderr}");
    assert!(stderr.contains("pre/some/key.txt"), "{stderr}");
    assert!(stderr.contains("NoSuchBucket"), "{stderr}");
    assert!(t0.elapsed().as_secs() < 10, "not retried");
    // A missing bucket is not mistaken for a missing key.
    let script = r#"
local store = require("rewind.store")
return { description = "x", params = {}, run = function()
  store.open("s3://no-such-bucket/pre"):exists("lock")
end }
"#;
    let out = run_script(dir.path(), script, &server.env());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr.contains("NoSuchBucket"), "{stderr}");
    assert!(stderr.contains("s3://no-such-bucket/pre/lock"), "{stderr}");
    // A missing key on read.
    let script = r#"
local store = require("rewind.store")
return { description = "x", params = {}, run = function()
  store.open("s3://perm/pre"):get("missing/key.bin")
end }
"#;
    let out = run_script(dir.path(), script, &server.env());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr.contains("s3://perm/pre/missing/key.bin"), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn access_denied_names_bucket_and_key_never_the_secret() {
    // moto enforces authentication once INITIAL_NO_AUTH_ACTION_COUNT requests are used up.
    let server = S3Server::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
local store = require("rewind.store")
return { description = "x", params = {}, run = function()
  local s = store.open("s3://locked/pre", { access_key_id = "AKIAEXAMPLEKEY1",
    secret_access_key = "wJalrXUtnFEMI-super-secret-value" })
  s:put("k/obj.bin", "data")
end }
"#;
    let t0 = Instant::now();
    let out = run_script(dir.path(), script, &server.env());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("s3://locked/pre/k/obj.bin"), "{all}");
    assert!(
        all.contains("InvalidAccessKeyId") || all.contains("AccessDenied") || all.contains("403"),
        "{all}"
    );
    assert!(!all.contains("wJalrXUtnFEMI-super-secret-value"), "{all}");
    assert!(t0.elapsed().as_secs() < 10, "not retried");
}

#[test]
fn server_side_encryption_options_reach_the_server() {
    let server = S3Server::start();
    server.create_bucket("sse-test");
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
local store = require("rewind.store")
return {{ description = "sse", params = {{}}, run = function()
  local s = store.open("s3://sse-test/p", {{ sse = "AES256", part_size = {PART} }})
  s:put("small", "x")
  s:put("multi", string.rep("m", {PART} + 1))
  s:create_if_absent("lock", "1")
  s:copy("small", "copied")
  local k = store.open("s3://sse-test/p", {{ sse = "aws:kms", kms_key_id = "my-key-id" }})
  k:put("kms", "y")
  return {{}}
end }}
"#
    );
    let out = run_script(dir.path(), &script, &server.env());
    assert!(out.status.success(), "{}", text(&out));
    for key in ["small", "multi", "lock", "copied"] {
        let h = server.head_headers(&format!("/sse-test/p/{key}"));
        assert!(
            h.iter()
                .any(|(k, v)| k == "x-amz-server-side-encryption" && v == "AES256"),
            "{key}: {h:?}"
        );
    }
    let h = server.head_headers("/sse-test/p/kms");
    assert!(
        h.iter()
            .any(|(k, v)| k == "x-amz-server-side-encryption" && v == "aws:kms"),
        "{h:?}"
    );
    // A bad value is refused before anything is sent.
    let out = run_script(
        dir.path(),
        r#"return { description = "x", params = {}, run = function()
  require("rewind.store").open("s3://sse-test/p", { sse = "rot13" })
end }"#,
        &server.env(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rot13"));
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn copy_above_the_threshold_is_a_multipart_copy() {
    let server = S3Server::start();
    server.create_bucket("copies");
    let dir = tempfile::tempdir().unwrap();
    let src = data(12 * MIB + 5, 7);
    std::fs::write(dir.path().join("in"), &src).unwrap();
    // 12 MiB above a 5 MiB threshold: UploadPartCopy of 5 + 5 + 2 MiB ranges.
    let script = format!(
        r#"
local store = require("rewind.store")
return {{ description = "copy", params = {{}}, run = function()
  local s = store.open("s3://copies/p", {{ copy_threshold = {PART}, copy_part_size = {PART},
                                          sse = "AES256" }})
  s:put_file("src", "in")
  s:put("small", "hello")
  s:copy("src", "big-copy")
  s:copy("small", "small-copy")
  s:get_file("big-copy", "out")
  local ok, err = pcall(s.copy, s, "missing/key", "never")
  return {{ big = s:head("big-copy"), small = s:head("small-copy"), small_body = s:get("small-copy"),
           ok = ok, err = tostring(err), never = s:exists("never") }}
end }}
"#
    );
    let out = run_script(dir.path(), &script, &server.env());
    assert!(out.status.success(), "{}", text(&out));
    let res = result(&out);
    let got = std::fs::read(dir.path().join("out")).unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&src), "copied bytes differ");
    assert_eq!(res["big"]["size"], src.len() as u64);
    let etag = res["big"]["etag"].as_str().unwrap();
    assert!(etag.ends_with("-3"), "a 3-part multipart copy: {etag}");
    let small = res["small"]["etag"].as_str().unwrap();
    assert!(
        !small.contains('-'),
        "below the threshold, one CopyObject: {small}"
    );
    assert_eq!(res["small_body"], "hello");
    // The multipart copy keeps the store's server-side encryption.
    let h = server.head_headers("/copies/p/big-copy");
    assert!(
        h.iter()
            .any(|(k, v)| k == "x-amz-server-side-encryption" && v == "AES256"),
        "{h:?}"
    );
    // A missing source: an error naming bucket and key, nothing created, no upload left.
    assert_eq!(res["ok"], false);
    let err = res["err"].as_str().unwrap();
    assert!(err.contains("s3://copies/p/missing/key"), "{err}");
    assert!(err.contains("not found"), "{err}");
    assert_eq!(res["never"], false);
    assert_eq!(server.multipart_uploads("copies"), 0);
}

#[test]
fn failed_multipart_copy_is_aborted() {
    // moto refuses to complete uploads whose non-last parts are under 6 MiB: the copy's 5 MiB parts all
    // copy, then CompleteMultipartUpload fails, and the upload must be aborted.
    let min = (6 * MIB).to_string();
    let server = S3Server::start_with(&[("S3_UPLOAD_PART_MIN_SIZE", min.as_str())]);
    server.create_bucket("copyfail");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in"), data(12 * MIB, 9)).unwrap();
    let script = format!(
        r#"
local store = require("rewind.store")
return {{ description = "copy failure", params = {{}}, run = function()
  local s = store.open("s3://copyfail/p", {{ copy_threshold = {PART}, copy_part_size = {PART} }})
  s:put_file("src", "in")  -- 8 MiB parts: accepted
  local ok, err = pcall(s.copy, s, "src", "dst")
  return {{ ok = ok, err = tostring(err), dst = s:exists("dst") }}
end }}
"#
    );
    let out = run_script(dir.path(), &script, &server.env());
    assert!(out.status.success(), "{}", text(&out));
    let res = result(&out);
    assert_eq!(res["ok"], false);
    let err = res["err"].as_str().unwrap();
    assert!(err.contains("CompleteMultipartUpload"), "{err}");
    assert!(
        err.contains("s3://copyfail/p/src to s3://copyfail/p/dst"),
        "{err}"
    );
    assert!(err.contains("EntityTooSmall"), "{err}");
    assert_eq!(res["dst"], false);
    assert_eq!(
        server.multipart_uploads("copyfail"),
        0,
        "the upload is aborted"
    );
    // Copy sizes S3 cannot take are refused before anything is sent.
    let out = run_script(
        dir.path(),
        r#"return { description = "x", params = {}, run = function()
  require("rewind.store").open("s3://copyfail/p", { copy_threshold = 6 * 1024 * 1024 * 1024 })
end }"#,
        &server.env(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("copy_threshold"));
}
