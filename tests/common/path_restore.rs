//! The one-file restore both tests/incremental.rs and tests/encrypted.rs measure: a 40 MiB tree of
//! incompressible files backed up through the fault proxy in front of moto, then `restore-dir path=` of one
//! 10 KiB file, with the archive bytes the server sent counted at the proxy.

use std::path::Path;

use super::archive::{listing, ok, rewind};
use super::fault_proxy::FaultProxy;
use super::s3::S3Server;

/// 8 directories of 50 files of 100 KiB of xorshift bytes, and `d3/small.dat` (10 KiB), whose bytes it
/// returns.
pub fn forty_mib_tree(src: &Path) -> Vec<u8> {
    for d in 0..8 {
        std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..50 {
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (d * 50 + f + 1) as u64;
            let data: Vec<u8> = (0..100 * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            std::fs::write(src.join(format!("d{d}/f{f}.bin")), data).unwrap();
        }
    }
    let small: Vec<u8> = (0..10 * 1024u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(src.join("d3/small.dat"), &small).unwrap();
    small
}

/// moto's environment with the proxy as the endpoint.
pub fn proxy_env(s3: &S3Server, proxy: &FaultProxy) -> Vec<(&'static str, String)> {
    let mut env = s3.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", proxy.endpoint.clone()));
    env
}

/// Backs up `cwd/data` to `store`, restores `d3/small.dat` alone into `cwd/one` and checks it (its bytes
/// equal `small`, and only `d3` and the file came back). Returns the archive bytes read at the server,
/// the archive's stored size and the restore's seconds.
pub fn restore_one_file(
    cwd: &Path,
    proxy: &FaultProxy,
    env: &[(&str, String)],
    store: &str,
    small: &[u8],
) -> (usize, u64, f64) {
    let run = |args: &[&str]| {
        let mut c = rewind();
        c.current_dir(cwd).arg("run").arg("--json").args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let store = format!("store={store}");
    let r = ok(&run(&["backup-dir", "from=data", &store]));
    let stored = r["bytes_out"].as_u64().unwrap();
    let before = proxy.seen().len();
    let t = std::time::Instant::now();
    let out = run(&[
        "restore-dir",
        "prefix=dirs/data",
        &store,
        "to=one",
        "path=d3/small.dat",
    ]);
    let secs = t.elapsed().as_secs_f64();
    ok(&out);
    assert_eq!(std::fs::read(cwd.join("one/d3/small.dat")).unwrap(), small);
    assert_eq!(listing(&cwd.join("one")).len(), 2, "only d3 and its file");
    let read: usize = proxy.seen()[before..]
        .iter()
        .filter(|s| s.method == "GET" && s.target.contains(".tar.zst"))
        .map(|s| s.body_bytes)
        .sum();
    (read, stored, secs)
}
