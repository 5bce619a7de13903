//! Client-side age encryption of stores (issue 19) end to end with the real binary: backup-dir with
//! encrypt=age1... leaves no file name and no plaintext 16-byte window of any file in any stored object,
//! manifests and indexes included; restore-dir with identity= restores byte-exact, also after an
//! incremental backup; a wrong identity or a missing key fails clearly and writes nothing; passphrase
//! mode round-trips without the passphrase showing anywhere; a path restore through the encrypting
//! store still reads about one frame (counted in front of moto); an encrypted indexed archive relies on
//! age's authentication and the index (no whole sha256), and a flipped or cut byte fails verify and restore.

mod common;
use common::archive::*;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;

/// A fresh X25519 key pair: (identity file, public key).
fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let id = age::x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "# created by tests/encrypted.rs\n{}\n",
            id.to_string().expose_secret()
        ),
    )
    .unwrap();
    (path, id.to_public().to_string())
}

/// Every stored object's bytes, by path.
fn store_objects(store: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    walkdir::WalkDir::new(store)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// Fails when any stored object holds a file name of the tree (5 characters or more) or any 16-byte
/// window of a file's content, or is not an age file.
fn assert_hidden(store: &Path, src: &Path) {
    let mut names = HashSet::new();
    let mut windows: HashSet<[u8; 16]> = HashSet::new();
    for e in walkdir::WalkDir::new(src).min_depth(1) {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if name.len() >= 5 {
            names.insert(name);
        }
        if e.file_type().is_file() {
            let data = std::fs::read(e.path()).unwrap();
            for w in data.windows(16) {
                windows.insert(w.try_into().unwrap());
            }
        }
    }
    let objects = store_objects(store);
    assert!(!objects.is_empty());
    for (path, data) in &objects {
        let rel = path.strip_prefix(store).unwrap().display().to_string();
        if rel.contains("/locks/") {
            continue; // released leases are deleted; none should be left, but they are not data
        }
        assert!(
            data.starts_with(b"age-encryption.org/v1"),
            "{rel} is not an age file"
        );
        assert!(
            serde_json::from_slice::<serde_json::Value>(data).is_err(),
            "{rel} is JSON in clear"
        );
        for n in &names {
            assert!(
                !data.windows(n.len()).any(|w| w == n.as_bytes()),
                "{rel} holds the file name {n}"
            );
            assert!(
                !rel.contains(n.as_str()),
                "the key {rel} holds the name {n}"
            );
        }
        if let Some(w) = data
            .windows(16)
            .find(|w| windows.contains(<&[u8; 16]>::try_from(*w).unwrap()))
        {
            panic!("{rel} holds plaintext {:?}", String::from_utf8_lossy(w));
        }
    }
}

fn backup(store: &Path, cwd: &Path, extra: &[&str]) -> serde_json::Value {
    let args: Vec<&str> = ["backup-dir", "from=data"]
        .iter()
        .chain(extra)
        .copied()
        .collect();
    ok(&run_in(store, cwd, &args))
}

#[test]
fn an_encrypted_backup_hides_names_and_contents_and_restores_with_the_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("data");
    make_tree(&src);
    let (idf, public) = keypair(tmp.path(), "key.txt");
    let enc = format!("encrypt={public}");
    let r1 = backup(&store, tmp.path(), &[&enc]);
    assert_hidden(&store, &src);

    // Restore with the identity: byte-exact.
    let idarg = format!("identity={}", idf.display());
    let out = run_in(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=out1", &idarg],
    );
    ok(&out);
    assert_eq!(hashed(&src), hashed(&tmp.path().join("out1")));

    // Incremental: change the tree, back up again (reads the parent's index: needs the identity).
    std::fs::write(src.join("a/one.log"), "a new log\n".repeat(500)).unwrap();
    std::fs::write(src.join("new_file.txt"), "new file content here\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r2 = backup(&store, tmp.path(), &[&enc, &idarg]);
    assert_ne!(r1["snapshot"], r2["snapshot"]);
    assert_hidden(&store, &src);
    ok(&run_in(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=out2", &idarg],
    ));
    assert_eq!(hashed(&src), hashed(&tmp.path().join("out2")));
    // verify, ls and snapshots read it with the identity.
    ok(&run_in(
        &store,
        tmp.path(),
        &["verify", "prefix=dirs/data", "snapshot=all", &idarg],
    ));
    let ls = run_in(&store, tmp.path(), &["ls", "prefix=dirs/data", &idarg]);
    assert_eq!(
        ok(&ls)["files"],
        7,
        "{}",
        String::from_utf8_lossy(&ls.stdout)
    );

    // prune reads the manifests and takes the lease with the identity alone.
    let pr = ok(&run_in(
        &store,
        tmp.path(),
        &["prune", "prefix=dirs/data", "keep_last=2", &idarg],
    ));
    assert!(pr.is_object(), "{pr}");
    let snaps = run_in(
        &store,
        tmp.path(),
        &["snapshots", "prefix=dirs/data", &idarg],
    );
    assert!(String::from_utf8_lossy(&snaps.stdout).contains(r2["snapshot"].as_str().unwrap()));
    // A wrong identity: exit 1, says the key does not match, names the object, writes nothing.
    let (other, _) = keypair(tmp.path(), "other.txt");
    let out = run_in(
        &store,
        tmp.path(),
        &[
            "restore-dir",
            "prefix=dirs/data",
            "to=out3",
            &format!("identity={}", other.display()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("key does not match"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("manifest_"), "{}", stderr(&out));
    assert!(!tmp.path().join("out3").exists());

    // No key: the "is encrypted" message.
    let out = run_in(
        &store,
        tmp.path(),
        &["restore-dir", "prefix=dirs/data", "to=out4"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is encrypted (age): give identity= or passphrase="),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("out4").exists());
    // Recipients from a file work as well.
    let rec = tmp.path().join("recipients.txt");
    std::fs::write(&rec, format!("# backup key\n{public}\n")).unwrap();
    let out = run_in(
        &store,
        tmp.path(),
        &[
            "backup-dir",
            "from=data",
            "prefix=dirs/other",
            &format!("encrypt={}", rec.display()),
            "full=true",
        ],
    );
    ok(&out);
}

#[test]
fn passphrase_mode_round_trips_and_never_shows_the_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("data");
    make_tree(&src);
    let pass = "correct-horse-battery-staple-42";
    let run = |args: &[&str], pass: &str| {
        rewind()
            .current_dir(tmp.path())
            .env("REWIND_STORE", &store)
            .env("REWIND_PASSPHRASE", pass)
            .arg("run")
            .arg("--json")
            .args(args)
            .output()
            .unwrap()
    };
    let b = run(&["backup-dir", "from=data", "encrypt=passphrase"], pass);
    ok(&b);
    assert_hidden(&store, &src);
    let r = run(&["restore-dir", "prefix=dirs/data", "to=out"], pass);
    ok(&r);
    assert_eq!(hashed(&src), hashed(&tmp.path().join("out")));
    // The passphrase given as a param, too.
    let b2 = rewind()
        .current_dir(tmp.path())
        .env("REWIND_STORE", &store)
        .args(["run", "--json", "snapshots", "prefix=dirs/data"])
        .arg(format!("passphrase={pass}"))
        .output()
        .unwrap();
    ok(&b2);
    let wrong = run(
        &["restore-dir", "prefix=dirs/data", "to=out2"],
        "not-the-passphrase",
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("key does not match"),
        "{}",
        stderr(&wrong)
    );
    assert!(!tmp.path().join("out2").exists());
    for o in [&b, &r, &b2, &wrong] {
        assert!(!String::from_utf8_lossy(&o.stdout).contains(pass));
        assert!(!String::from_utf8_lossy(&o.stderr).contains(pass));
    }
    for (p, data) in store_objects(&store) {
        assert!(
            !data.windows(pass.len()).any(|w| w == pass.as_bytes()),
            "{} holds the passphrase",
            p.display()
        );
    }
}

#[test]
fn an_encrypted_path_restore_reads_about_one_frame() {
    use common::fault_proxy::FaultProxy;
    use common::path_restore::{forty_mib_tree, proxy_env, restore_one_file};
    let s3 = common::s3::S3Server::start();
    s3.create_bucket("enc");
    let proxy = FaultProxy::start(s3.port, 1);
    let tmp = tempfile::tempdir().unwrap();
    let small = forty_mib_tree(&tmp.path().join("data"));
    let (idf, public) = keypair(tmp.path(), "key.txt");
    let mut env = proxy_env(&s3, &proxy);
    env.push(("REWIND_RECIPIENTS", public));
    env.push(("REWIND_IDENTITY", idf.display().to_string()));
    let (read, stored, secs) =
        restore_one_file(tmp.path(), &proxy, &env, "s3://enc/backups", &small);
    eprintln!(
        "encrypted path restore: {read} of {stored} stored bytes read ({:.3}%), {secs:.2}s",
        read as f64 * 100.0 / stored as f64
    );
    assert!(
        read > 0 && read < 1_400_000,
        "read {read} of {stored} archive bytes"
    );
    assert!(
        (read as u64) * 20 < stored,
        "read {read} of {stored} archive bytes"
    );
}

/// `rewind key new FILE` makes a pair without age-keygen: the identity file is private (0600), never
/// overwritten, readable by age, and its printed public key encrypts a backup that the file restores.
#[test]
fn rewind_key_new_makes_a_pair_that_backs_up_and_restores() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, store) = (tmp.path(), tmp.path().join("store"));
    std::fs::create_dir_all(cwd.join("data/sub")).unwrap();
    std::fs::write(
        cwd.join("data/sub/secret-name.txt"),
        b"the plaintext of a file whose name is secret too",
    )
    .unwrap();
    let key = |args: &[&str]| {
        rewind()
            .current_dir(cwd)
            .arg("key")
            .args(args)
            .output()
            .unwrap()
    };
    let o = key(&["new", "id.txt"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let public = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert!(public.starts_with("age1"), "{public}");
    let idf = cwd.join("id.txt");
    assert_eq!(
        std::fs::metadata(&idf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&idf).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap();
    let id: age::x25519::Identity = line.parse().unwrap();
    assert_eq!(
        id.to_public().to_string(),
        public,
        "the printed key is the file's"
    );
    // Never overwritten: exit 2, the file unchanged.
    let o = key(&["new", "id.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(std::fs::read_to_string(&idf).unwrap(), text);
    let o = key(&["public", "id.txt"]);
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), public);

    let encrypt = format!("encrypt={public}");
    backup(&store, cwd, &[&encrypt, "identity=id.txt"]);
    assert_hidden(&store, &cwd.join("data"));
    ok(&run_in(
        &store,
        cwd,
        &[
            "restore-dir",
            "prefix=dirs/data",
            "to=out",
            "identity=id.txt",
        ],
    ));
    assert_eq!(
        std::fs::read(cwd.join("out/sub/secret-name.txt")).unwrap(),
        b"the plaintext of a file whose name is secret too"
    );
}

/// The stored file of the snapshot's object whose key ends with `suffix`.
fn stored(store: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = store_objects(store)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(found.len(), 1, "{suffix}: {found:?}");
    found[0].clone()
}

/// An indexed archive in an encrypted store: its manifest entry says `integrity: age` and carries no sha256
/// (it is not hashed as a whole: age authenticates every chunk and the end, the index every file). A
/// flipped byte or a cut tail of the archive then fails verify and restore-dir (nothing written); a plain
/// store's manifest that claims `integrity: age` is refused, since nothing would check its objects.
#[test]
fn encrypted_entries_rely_on_age_and_a_changed_byte_fails_verify_and_restore() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, store) = (tmp.path(), tmp.path().join("store"));
    make_tree(&cwd.join("data"));
    // Incompressible, so that the archive spans several of age's 64 KiB chunks.
    common::lease::random_file(&cwd.join("data/big.bin"), 300_000, 0x9e37_79b9_7f4a_7c15);
    let (idf, public) = keypair(cwd, "key.txt");
    let idarg = format!("identity={}", idf.display());
    backup(&store, cwd, &[&format!("encrypt={public}"), &idarg]);
    let id: age::x25519::Identity = std::fs::read_to_string(&idf)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let manifest_file = stored(&store, ".json");
    let sealed = std::fs::read(&manifest_file).unwrap();
    let dec = age::Decryptor::new(&sealed[..]).unwrap();
    let mut text = String::new();
    dec.decrypt(std::iter::once(&id as &dyn age::Identity))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let objects = m["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2, "{m}");
    for o in objects {
        if o["ext"] == "tar.zst" {
            assert_eq!(o["integrity"], "age", "{o}");
            assert!(o.get("sha256").is_none(), "{o}");
        } else {
            // The index (and any other object) keeps its sha256.
            assert!(o.get("integrity").is_none(), "{o}");
            assert_eq!(o["sha256"].as_str().unwrap().len(), 64, "{o}");
        }
    }
    let archive = stored(&store, ".tar.zst");
    let good = std::fs::read(&archive).unwrap();
    ok(&run_in(
        &store,
        cwd,
        &["verify", "prefix=dirs/data", &idarg],
    ));

    let bad_runs = |what: &str, out_dir: &str| {
        let v = run_in(&store, cwd, &["verify", "prefix=dirs/data", &idarg]);
        assert_eq!(
            v.status.code(),
            Some(1),
            "{what}: verify passed: {}",
            stderr(&v)
        );
        let said = format!("{}{}", stderr(&v), String::from_utf8_lossy(&v.stdout));
        assert!(
            said.contains(".tar.zst"),
            "{what}: verify does not name the archive: {said}"
        );
        let r = run_in(
            &store,
            cwd,
            &[
                "restore-dir",
                "prefix=dirs/data",
                &format!("to={out_dir}"),
                &idarg,
            ],
        );
        assert_eq!(
            r.status.code(),
            Some(1),
            "{what}: restore passed: {}",
            stderr(&r)
        );
        assert!(
            !cwd.join(out_dir).exists(),
            "{what}: restore wrote {out_dir}"
        );
    };
    // One ciphertext byte in the middle of the archive.
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    std::fs::write(&archive, &flipped).unwrap();
    bad_runs("a flipped byte", "out1");
    // The archive cut short by one 64 KiB chunk and a bit (the end is authenticated too).
    std::fs::write(&archive, &good[..good.len() - 70_000]).unwrap();
    bad_runs("a cut tail", "out2");
    std::fs::write(&archive, &good).unwrap();
    ok(&run_in(
        &store,
        cwd,
        &["restore-dir", "prefix=dirs/data", "to=out3", &idarg],
    ));
    assert_eq!(hashed(&cwd.join("data")), hashed(&cwd.join("out3")));

    // A plain store whose manifest claims integrity age: refused, naming why.
    let plain = cwd.join("plain");
    ok(&run_in(&plain, cwd, &["backup-dir", "from=data"]));
    let mf = stored(&plain, ".json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mf).unwrap()).unwrap();
    for o in m["objects"].as_array_mut().unwrap() {
        let o = o.as_object_mut().unwrap();
        o.remove("sha256");
        o.insert("integrity".into(), "age".into());
    }
    std::fs::write(&mf, serde_json::to_vec(&m).unwrap()).unwrap();
    let v = run_in(&plain, cwd, &["verify", "prefix=dirs/data"]);
    let said = format!("{}{}", stderr(&v), String::from_utf8_lossy(&v.stdout));
    assert_ne!(v.status.code(), Some(0), "{said}");
    assert!(said.contains("not opened with age keys"), "{said}");
    let r = run_in(&plain, cwd, &["restore-dir", "prefix=dirs/data", "to=out4"]);
    assert!(
        stderr(&r).contains("not opened with age keys"),
        "{}",
        stderr(&r)
    );
    assert!(!cwd.join("out4").exists());
}
