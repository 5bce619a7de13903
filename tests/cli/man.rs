//! `rewind man`: the pages as man-db shows them (`man -l`, groff's warnings on).

use std::collections::BTreeSet;

use super::completions::user_lib;
use super::*;

/// `MANWIDTH=80 man -l FILE` must exit 0 with nothing on stderr. MANROFFOPT=-ww shows groff's warnings,
/// which man-db otherwise hides; --nh keeps words whole across lines for the `contains` checks. The
/// text comes back with whitespace collapsed.
fn man_l(file: &Path) -> String {
    let out = Command::new("man")
        .args(["--nh", "-l"])
        .arg(file)
        .env("MANWIDTH", "80")
        .env("MANROFFOPT", "-ww")
        .output()
        .expect("man-db's man (tests/run.sh installs it)");
    let r = from_output(out);
    assert_eq!(r.code, 0, "man -l {}: {r:?}", file.display());
    assert!(r.stderr.is_empty(), "man -l {}: {r:?}", file.display());
    r.stdout
        .replace('\u{2010}', "-")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `rewind man [NAME]` as man shows it.
fn rendered(dir: &Path, name: Option<&str>) -> String {
    let mut args = vec!["man"];
    args.extend(name);
    let r = rewind(dir, &args);
    assert_eq!(r.code, 0, "{r:?}");
    let file = write(dir, &format!("{}.1", name.unwrap_or("rewind")), &r.stdout);
    man_l(&file)
}

fn contains_all(text: &str, wants: &[&str]) {
    for want in wants {
        assert!(text.contains(want), "lacks {want:?}:\n{text}");
    }
}

#[test]
fn man_dir_writes_every_page_and_each_renders() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("man1");
    let r = rewind(d.path(), &["man", "--dir", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let files: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        r.stdout
            .contains(&format!("wrote {} man pages", files.len())),
        "{r:?}"
    );
    for want in [
        "rewind.1",
        "rewind-run.1",
        "rewind-list.1",
        "rewind-help.1",
        "rewind-check.1",
        "rewind-daemon.1",
        "rewind-stdlib-export.1",
        "rewind-completions.1",
        "rewind-man.1",
    ] {
        assert!(files.contains(want), "{want}: {files:?}");
    }
    // One page per procedure `rewind list` shows, and no other.
    let list = rewind(d.path(), &["list"]);
    let procedures: BTreeSet<String> = list
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| format!("rewind-run-{n}.1"))
        .collect();
    assert!(procedures.contains("rewind-run-backup-dir.1"), "{list:?}");
    let pages: BTreeSet<String> = files
        .iter()
        .filter(|f| f.starts_with("rewind-run-"))
        .cloned()
        .collect();
    assert_eq!(pages, procedures);

    for f in &files {
        let text = man_l(&out.join(f));
        let title = format!("{}(1)", f.trim_end_matches(".1"));
        assert!(text.starts_with(&title), "{f}: {text}");
    }

    let text = man_l(&out.join("rewind-run-backup-dir.1"));
    contains_all(
        &text,
        &[
            "rewind run backup-dir",
            "Back up directories to a store",
            "<from=LIST> directories to back up (comma-separated). Type: list",
            "Required.",
            "[store=STRING] store URL",
            "[compression=STRING] [default: zstd] archive compression",
            "Possible values: • zstd • gzip • none",
            "[lock_ttl=DURATION] [default: 2m]",
            "[passphrase=STRING]",
            "Secret: redacted",
            "REWIND_PASSPHRASE environment variable",
            "--params-file <FILE>",
            "EXAMPLE rewind run backup-dir from=...",
        ],
    );
    let text = man_l(&out.join("rewind.1"));
    contains_all(
        &text,
        &[
            "rewind-completions(1)",
            "rewind-man(1)",
            "PROCEDURES",
            "rewind-run-backup-dir(1) Back up directories",
            "REWIND_PATH",
        ],
    );
}

#[test]
fn man_name_prints_a_command_or_procedure_page() {
    let d = tempfile::tempdir().unwrap();
    let root = rendered(d.path(), None);
    assert!(root.starts_with("rewind(1)"), "{root}");
    let run = rendered(d.path(), Some("run"));
    assert!(run.starts_with("rewind-run(1)"), "{run}");
    assert_eq!(run, rendered(d.path(), Some("rewind-run")));
    let export = rendered(d.path(), Some("stdlib-export"));
    assert!(export.starts_with("rewind-stdlib-export(1)"), "{export}");
    let hello = rendered(d.path(), Some("hello"));
    assert!(hello.starts_with("rewind-run-hello(1)"), "{hello}");
    assert_eq!(hello, rendered(d.path(), Some("rewind-run-hello")));
    contains_all(&hello, &["[name=STRING] [default: world]"]);
}

#[test]
fn man_renders_a_procedure_from_the_search_path_without_running_it() {
    let d = tempfile::tempdir().unwrap();
    let (lib, marker) = user_lib(d.path());
    let lib_s = lib.to_str().unwrap();
    let r = rewind(d.path(), &["--path", lib_s, "man", "mirror-site"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("top-level output"), "{r:?}");
    let text = man_l(&write(d.path(), "mirror-site.1", &r.stdout));
    contains_all(
        &text,
        &[
            "rewind-run-mirror-site - Mirror a site into a directory",
            "rewind run mirror-site",
            "<target=STRING> where the copy goes. Type: string. Required.",
            "[mode=STRING] [default: fast] how hard to try",
            "• fast • slow",
            "[api_key=STRING] the site's API key. Type: string. Secret",
            "MIRROR_KEY environment variable",
            "EXAMPLE rewind run mirror-site target=...",
        ],
    );

    // A script that does not load is left out of --dir with a warning; the others are written.
    write(&lib, "scripts/broken.lua", "return {");
    let out = d.path().join("man1");
    let r = rewind_env(
        d.path(),
        &["man", "--dir", out.to_str().unwrap()],
        &[("REWIND_PATH", lib_s)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("'broken'"), "{r:?}");
    assert!(out.join("rewind-run-mirror-site.1").is_file());
    assert!(out.join("rewind-run-backup-dir.1").is_file());
    assert!(!out.join("rewind-run-broken.1").exists());
    assert!(
        !marker.exists(),
        "rendering the page called the script's run"
    );
}

#[test]
fn man_with_an_unknown_name_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let r = rewind(d.path(), &["man", "backup-dri"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no man page named 'backup-dri'"), "{r:?}");
    assert!(r.stderr.contains("did you mean: backup-dir"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    let r = rewind(d.path(), &["man", "--dir", "out", "hello"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(!d.path().join("out").exists());
}
