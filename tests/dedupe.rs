//! rewind.dedupe through the real binary: persistence across restarts, expiry, and crash safety.

mod common;
use common::archive::*;

#[test]
fn survives_restart_and_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("cache/hits.redb");
    let db = db.to_str().unwrap();
    let r = ok(&run_lua(
        tmp.path(),
        "local d = require('rewind.dedupe').open(p.db, {ttl = '7d'})
         local new = d:add('a') + d:add({'b', 'c', 'a'})
         return {new = new, seen_a = d:seen('a'), seen_z = d:seen('z'), count = d:count()}",
        &[("db", db)],
    ));
    assert_eq!(r["new"], 3, "{r}");
    assert_eq!(r["seen_a"], true);
    assert_eq!(r["seen_z"], false);
    assert_eq!(r["count"], 3);
    // A new process sees what the first one added; remove works; a short ttl makes entries unseen.
    let r = ok(&run_lua(
        tmp.path(),
        "local dedupe = require('rewind.dedupe')
         local d = dedupe.open(p.db, {ttl = '7d'})
         local before = {d:seen('a'), d:seen('b'), d:seen('c')}
         local removed = d:remove('b')
         return {before = before, removed = removed, b = d:seen('b'), count = d:count()}",
        &[("db", db)],
    ));
    assert_eq!(r["before"], serde_json::json!([true, true, true]), "{r}");
    assert_eq!(r["removed"], 1);
    assert_eq!(r["b"], false);
    assert_eq!(r["count"], 2);
    let r = ok(&run_lua(
        tmp.path(),
        "local d = require('rewind.dedupe').open(p.db, {ttl = 1})
         require('rewind.task').sleep(2.1)
         local seen = d:seen('a')
         local expired = d:expire()
         return {seen = seen, expired = expired, count = d:count()}",
        &[("db", db)],
    ));
    assert_eq!(r["seen"], false, "{r}");
    assert_eq!(r["expired"], 2);
    assert_eq!(r["count"], 0);
    // A bad ttl is a usage error.
    let out = run_lua(
        tmp.path(),
        "require('rewind.dedupe').open(p.db, {ttl = 'soon'})",
        &[("db", db)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ttl"), "{}", stderr(&out));
}

#[test]
fn sigkill_keeps_every_add_that_returned() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("hits.redb");
    let mark = tmp.path().join("last");
    let script = tmp.path().join("adder.lua");
    std::fs::write(
        &script,
        "return { description = 'adds keys forever', params = { db = {type='string', doc='db'}, mark = {type='string', doc='m'} },
          run = function(p)
            local d = require('rewind.dedupe').open(p.db)
            local fs = require('rewind.fs')
            for i = 1, 1000000 do
              d:add('key-' .. i)
              fs.write(p.mark, tostring(i))
            end
          end }",
    )
    .unwrap();
    let mut child = rewind()
        .arg("run")
        .arg(&script)
        .arg(format!("db={}", db.display()))
        .arg(format!("mark={}", mark.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it made progress, then kill it hard.
    let start = std::time::Instant::now();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let n: u64 = std::fs::read_to_string(&mark)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if n >= 50 || start.elapsed().as_secs() > 30 {
            break;
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let last: u64 = std::fs::read_to_string(&mark).unwrap().parse().unwrap();
    assert!(last >= 50, "only {last} adds in 30 s");
    let r = ok(&run_lua(
        tmp.path(),
        "local d = require('rewind.dedupe').open(p.db)
         local missing = {}
         for i = 1, tonumber(p.n) do if not d:seen('key-' .. i) then missing[#missing + 1] = i end end
         return {missing = #missing, count = d:count()}",
        &[("db", db.to_str().unwrap()), ("n", &last.to_string())],
    ));
    assert_eq!(r["missing"], 0, "{r}");
    assert!(r["count"].as_u64().unwrap() >= last);
}
