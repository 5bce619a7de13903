//! rewind.tar and rewind.hash through the real binary: round trips and hostile archives.

mod common;
use common::archive::*;

use std::path::Path;

fn python_tar(path: &Path, code: &str) {
    let script = format!(
        "import tarfile, io\nt = tarfile.open({:?}, 'w')\ndef f(name, data=b'x'):\n    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))\ndef l(name, target, kind=tarfile.SYMTYPE):\n    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; t.addfile(i)\ndef d(name):\n    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)\n{code}\nt.close()\n",
        path.display().to_string()
    );
    let st = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn round_trip_keeps_bytes_modes_mtimes_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    for compression in ["zstd", "gzip", "none"] {
        let arch = tmp.path().join(format!("a.{compression}.tar"));
        let dest = tmp.path().join(format!("out-{compression}"));
        let r = ok(&run_lua(
            tmp.path(),
            "local tar = require('rewind.tar')\nreturn tar.create{from = {p.from}, to = p.to, flat = true, compression = p.c}",
            &[
                ("from", src.to_str().unwrap()),
                ("to", arch.to_str().unwrap()),
                ("c", compression),
            ],
        ));
        assert_eq!(r["files"], 6, "{r}");
        assert_eq!(r["symlinks"], 2);
        assert_eq!(r["dirs"], 4);
        assert_eq!(
            r["bytes_out"].as_u64().unwrap(),
            std::fs::metadata(&arch).unwrap().len()
        );
        let r = ok(&run_lua(
            tmp.path(),
            "local tar = require('rewind.tar')\nreturn tar.extract{from = p.from, to = p.to}",
            &[
                ("from", arch.to_str().unwrap()),
                ("to", dest.to_str().unwrap()),
            ],
        ));
        assert_eq!(r["files"], 6);
        assert_eq!(snapshot_tree(&src), snapshot_tree(&dest), "{compression}");
    }
    // Not flat: entries sit under the directory's name; exclude globs drop matches.
    let arch = tmp.path().join("b.tar.zst");
    let dest = tmp.path().join("out-b");
    let r = ok(&run_lua(
        tmp.path(),
        "local tar = require('rewind.tar')\nlocal r = tar.create{from = {p.from}, to = p.to, exclude = {'*.log', 'empty'}}\nr.list = tar.list(p.to)\nreturn r",
        &[
            ("from", src.to_str().unwrap()),
            ("to", arch.to_str().unwrap()),
        ],
    ));
    assert_eq!(r["files"], 5, "{r}");
    let names: Vec<&str> = r["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"src/a/b/bin.dat"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".log") || n.contains("empty")),
        "{names:?}"
    );
    ok(&run_lua(
        tmp.path(),
        "return require('rewind.tar').extract{from = p.from, to = p.to}",
        &[
            ("from", arch.to_str().unwrap()),
            ("to", dest.to_str().unwrap()),
        ],
    ));
    assert_eq!(
        std::fs::read(dest.join("src/a/b/bin.dat")).unwrap(),
        std::fs::read(src.join("a/b/bin.dat")).unwrap()
    );
}

#[test]
fn reader_source_and_sha256_check() {
    let tmp = tempfile::tempdir().unwrap();
    let arch = tmp.path().join("dump.tar.zst");
    let dest = tmp.path().join("out");
    let body = "local tar, exec, hash = require('rewind.tar'), require('rewind.exec'), require('rewind.hash')
      local proc = exec.spawn{'sh', '-c', 'seq 1 200000'}
      local r = tar.create{from = proc:stdout(), name = 'dump.sql', to = p.to}
      proc:wait()
      local sum = hash.sha256_file(p.to)
      local x = tar.extract{from = p.to, to = p.dest, sha256 = sum}
      local ok, err = pcall(tar.extract, {from = p.to, to = p.dest .. '2', sha256 = string.rep('0', 64)})
      return {files = r.files, extracted = x.files, bad = tostring(err), ok = ok, sum = sum, abc = hash.sha256('abc')}";
    let r = ok(&run_lua(
        tmp.path(),
        body,
        &[
            ("to", arch.to_str().unwrap()),
            ("dest", dest.to_str().unwrap()),
        ],
    ));
    assert_eq!(r["files"], 1, "{r}");
    let seq = std::process::Command::new("seq")
        .args(["1", "200000"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(std::fs::read(dest.join("dump.sql")).unwrap(), seq);
    assert_eq!(r["ok"], false);
    assert!(
        r["bad"].as_str().unwrap().contains("is corrupt: sha256"),
        "{r}"
    );
    let out = std::process::Command::new("sha256sum")
        .arg(&arch)
        .output()
        .unwrap();
    assert_eq!(
        r["sum"].as_str().unwrap(),
        String::from_utf8_lossy(&out.stdout)
            .split(' ')
            .next()
            .unwrap()
    );
    assert_eq!(
        r["abc"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// Each hostile archive is refused with an error naming the entry, and nothing appears outside `to`.
#[test]
fn hostile_archives_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), "keep").unwrap();
    let o = outside.display().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        ("dotdot", "f('ok.txt'); f('../outside/x')".into(), "'../outside/x': its path contains '..'"),
        ("absolute", format!("f('{o}/abs')"), "its path is absolute"),
        ("symlink-abs", format!("l('esc', '{o}'); f('esc/pwned')"), "'esc/pwned': it would be written through the symlink 'esc'"),
        ("symlink-rel", "l('esc', '../outside'); f('esc/pwned')".into(), "'esc/pwned': it would be written through the symlink 'esc'"),
        ("symlink-chain", "d('d'); l('d/s', '..'); l('d/t', 's/../outside'); f('d/t/pwned')".into(), "'d/t/pwned': it would be written through the symlink 'd/t'"),
        ("hardlink", "l('h', '../outside/victim', tarfile.LNKTYPE)".into(), "hard link target '../outside/victim'"),
        ("chardev", "i = tarfile.TarInfo('null'); i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3; t.addfile(i)".into(), "'null': it is a char device"),
        ("fifo", "i = tarfile.TarInfo('p'); i.type = tarfile.FIFOTYPE; t.addfile(i)".into(), "'p': it is a fifo"),
    ];
    let before = listing(tmp.path());
    for (name, code, expect) in cases {
        let arch = tmp.path().join(format!("{name}.tar"));
        python_tar(&arch, &code);
        let dest = tmp.path().join(format!("dest-{name}"));
        let out = run_lua(
            tmp.path(),
            "return require('rewind.tar').extract{from = p.from, to = p.to}",
            &[
                ("from", arch.to_str().unwrap()),
                ("to", dest.to_str().unwrap()),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(expect),
            "{name}: expected '{expect}' in: {err}"
        );
        assert!(err.contains("refusing archive entry"), "{name}: {err}");
        // Nothing new outside the destination (only the archive and the test script beside it).
        let now: Vec<_> = listing(tmp.path())
            .into_iter()
            .filter(|p| {
                !p.strip_prefix(tmp.path())
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("dest-")
                    && p.extension().is_none_or(|e| e != "tar" && e != "lua")
            })
            .collect();
        let was: Vec<_> = before
            .iter()
            .filter(|p| p.extension().is_none_or(|e| e != "tar" && e != "lua"))
            .cloned()
            .collect();
        assert_eq!(now, was, "{name}: something was written outside");
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "keep"
        );
    }
}

/// An entry never replaces an earlier one: `x` first arrives as a symlink (to `y`, inside, dangling), then
/// as a regular file; the file is refused rather than written through the link or put in its place. A
/// repeated file name is refused the same way.
#[test]
fn a_later_entry_never_replaces_an_earlier_one() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, code, expect) in [
        (
            "link-then-file",
            "l('x', 'y'); f('x', b'file')",
            "'x': it is already in the destination (as a symlink)",
        ),
        (
            "file-twice",
            "f('z', b'one'); f('z', b'two')",
            "'z': it is already in the destination (as a file)",
        ),
    ] {
        let arch = tmp.path().join(format!("{name}.tar"));
        python_tar(&arch, code);
        let dest = tmp.path().join(format!("dest-{name}"));
        let out = run_lua(
            tmp.path(),
            "return require('rewind.tar').extract{from = p.from, to = p.to}",
            &[
                ("from", arch.to_str().unwrap()),
                ("to", dest.to_str().unwrap()),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(expect), "{name}: {}", stderr(&out));
        assert!(
            !dest.join("y").exists(),
            "{name}: nothing written through the link"
        );
    }
}
