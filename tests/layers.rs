//! The floors of `src/` import only the floors below them. Reads every `crate::`/`rewind::` path in the
//! sources and fails naming the file and line of any arrow that runs up (or sideways into the host's
//! registry). The table below is the whole rule.

use std::path::{Path, PathBuf};

/// Each floor and the floors it may import (besides itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("cli", &["daemon", "host", "prims", "base"]),
    ("daemon", &["host", "prims", "base"]),
    ("host", &["prims", "base"]),
    ("prims", &["base"]),
    ("base", &[]),
];

/// Within the host, only the registry names the primitives: the rest of the host reaches them through it.
const HOST_REGISTRY: &str = "src/host/modules.rs";

fn floor_of_file(rel: &str) -> Option<&'static str> {
    let first = rel.strip_prefix("src/")?.split('/').next()?;
    match first {
        "main.rs" | "cli" => Some("cli"),
        "daemon" => Some("daemon"),
        "host" => Some("host"),
        "prims" => Some("prims"),
        "base" => Some("base"),
        // lib.rs declares the floors; bin/ holds test-support programs that use none of them.
        _ => None,
    }
}

/// Code with comments and string literals blanked out, so only real paths remain.
fn code_only(line: &str, in_block_comment: &mut bool) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if *in_block_comment {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                *in_block_comment = false;
            }
            continue;
        }
        if in_str {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                *in_block_comment = true;
            }
            '"' => in_str = true,
            // A char literal such as '"' must not open a string.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("\\") || rest.chars().nth(1) == Some('\'') {
                    while let Some(n) = chars.next() {
                        if n == '\\' {
                            chars.next();
                        } else if n == '\'' {
                            break;
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The floors named by `crate::X` / `rewind::X` paths in a use statement or expression, including the
/// heads of a braced group (`use crate::{a::b, c}`).
fn floors_named(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for root in ["crate::", "rewind::"] {
        let mut rest = code;
        while let Some(i) = rest.find(root) {
            let before = rest[..i].chars().last();
            rest = &rest[i + root.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let head: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !head.is_empty() {
                        out.push(head);
                    }
                }
            } else {
                let head: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push(head);
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every arrow that breaks the table, as "file:line: floor -> floor".
fn violations(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let floors: Vec<&str> = ALLOWED.iter().map(|(f, _)| *f).collect();
    let mut bad = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let Some(floor) = floor_of_file(&rel) else {
            continue;
        };
        let allowed = ALLOWED.iter().find(|(f, _)| *f == floor).unwrap().1;
        let text = std::fs::read_to_string(&file).unwrap();
        let mut in_comment = false;
        for (n, line) in text.lines().enumerate() {
            let code = code_only(line, &mut in_comment);
            for target in floors_named(&code) {
                // Paths into the crate that are not a floor (`crate::Foo` in lib.rs) are not arrows.
                if !floors.contains(&target.as_str()) || target == floor {
                    continue;
                }
                let up = !allowed.contains(&target.as_str());
                let host_bypass = floor == "host" && target == "prims" && rel != HOST_REGISTRY;
                if up || host_bypass {
                    let why = if host_bypass {
                        " (the host names primitives only in its registry)"
                    } else {
                        ""
                    };
                    bad.push(format!("{rel}:{}: {floor} -> {target}{why}", n + 1));
                }
            }
        }
    }
    bad
}

#[test]
fn every_floor_imports_only_the_floors_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bad = violations(root);
    assert!(
        bad.is_empty(),
        "imports that run up a floor (allowed: {ALLOWED:?}):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    // The rule itself must be able to fail: a primitive that reaches into the host is caught, in each
    // spelling a path can take.
    let dir = tempfile::tempdir().unwrap();
    let prims = dir.path().join("src/prims");
    std::fs::create_dir_all(&prims).unwrap();
    std::fs::write(
        prims.join("bad.rs"),
        "use crate::base::errors::IntoLua; // crate::daemon in a comment is fine\n\
         use crate::{base::stream, host::Host};\n\
         fn f() { let _ = \"crate::cli in a string is fine\"; crate::daemon::run(); }\n",
    )
    .unwrap();
    let found = violations(dir.path());
    assert_eq!(
        found,
        vec![
            "src/prims/bad.rs:2: prims -> host".to_string(),
            "src/prims/bad.rs:3: prims -> daemon".to_string(),
        ]
    );
}

#[test]
fn every_source_file_is_on_a_floor() {
    // A new top-level folder must be placed in the table, or the rule would silently skip it.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for e in std::fs::read_dir(root.join("src")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        let known = ["lib.rs", "bin"].contains(&name.as_str())
            || floor_of_file(&format!("src/{name}")).is_some();
        assert!(
            known,
            "src/{name} is on no floor: add it to tests/layers.rs"
        );
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    // Long files are split along their seams; a little slack keeps this from failing on one added line.
    const LIMIT: usize = 640;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > LIMIT).then(|| format!("{}: {n} lines", f.strip_prefix(root).unwrap().display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {LIMIT} lines:\n{}",
        long.join("\n")
    );
}
