//! The search path for scripts and modules: `--path` directories, then `REWIND_PATH`, then the copies
//! built into the binary. A user file shadows the bundled one of the same name.
//!
//! A directory on the path is laid out like the exported tree (`rewind stdlib export DIR`): scripts in
//! `DIR/scripts/NAME.lua` (or `DIR/NAME.lua`), modules in `DIR/stdlib/a/b.lua` (or `DIR/a/b.lua`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use include_dir::{Dir, include_dir};

use super::modules::{RustModule, rust_module};

pub static BUNDLED_SCRIPTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/scripts");
pub static BUNDLED_STDLIB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/stdlib");

#[derive(Clone, Debug, Default)]
pub struct SearchPath {
    pub dirs: Arc<Vec<PathBuf>>,
}

/// Where a script or module comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    Bundled,
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Bundled => f.write_str("bundled"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A script's code, ready to load.
#[derive(Clone, Debug)]
pub struct ScriptSource {
    pub name: String,
    pub chunk_name: String,
    pub code: String,
    pub origin: Origin,
}

pub enum ModuleSource {
    Lua {
        chunk_name: String,
        code: String,
        path: Option<PathBuf>,
    },
    Rust(RustModule),
}

impl SearchPath {
    /// `--path` directories first, then `REWIND_PATH` (colon-separated).
    pub fn new(cli_dirs: &[PathBuf]) -> SearchPath {
        SearchPath::with_config(cli_dirs, &[])
    }

    /// `--path` directories, then `REWIND_PATH`, then the config file's `path`.
    pub fn with_config(cli_dirs: &[PathBuf], config_dirs: &[PathBuf]) -> SearchPath {
        let mut dirs: Vec<PathBuf> = cli_dirs.to_vec();
        dirs.extend(env_dirs());
        dirs.extend(config_dirs.iter().cloned());
        SearchPath {
            dirs: Arc::new(dirs),
        }
    }

    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        parts.push("bundled".into());
        parts.join(", ")
    }

    /// Resolves a script by name or path.
    pub fn find_script(&self, name: &str) -> Option<ScriptSource> {
        let as_path = Path::new(name);
        if name.contains('/') || name.ends_with(".lua") {
            if as_path.is_file() {
                return read_file_source(name_of(as_path), as_path);
            }
            if name.contains('/') {
                return None;
            }
        }
        let base = name.trim_end_matches(".lua");
        for dir in self.dirs.iter() {
            for candidate in [
                dir.join("scripts").join(format!("{base}.lua")),
                dir.join(format!("{base}.lua")),
            ] {
                if candidate.is_file() {
                    return read_file_source(base.to_string(), &candidate);
                }
            }
        }
        let file = BUNDLED_SCRIPTS.get_file(format!("{base}.lua"))?;
        Some(ScriptSource {
            name: base.to_string(),
            chunk_name: format!("@bundled/scripts/{base}.lua"),
            code: file.contents_utf8()?.to_string(),
            origin: Origin::Bundled,
        })
    }

    /// Every script reachable by name, with where it comes from; user copies shadow bundled ones.
    pub fn list_scripts(&self) -> Vec<(String, Origin, bool)> {
        let mut out: Vec<(String, Origin, bool)> = Vec::new();
        for dir in self.dirs.iter() {
            for sub in [dir.join("scripts"), dir.clone()] {
                let Ok(rd) = std::fs::read_dir(&sub) else {
                    continue;
                };
                let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                names.sort();
                for p in names {
                    if p.extension().is_some_and(|e| e == "lua")
                        && !p.to_string_lossy().ends_with("_test.lua")
                    {
                        let n = name_of(&p);
                        if !out.iter().any(|(o, _, _)| *o == n) {
                            out.push((n, Origin::File(p), false));
                        }
                    }
                }
            }
        }
        for f in BUNDLED_SCRIPTS.files() {
            let n = name_of(f.path());
            if f.path().extension().is_some_and(|e| e == "lua") {
                match out.iter_mut().find(|(o, _, _)| *o == n) {
                    Some(entry) => entry.2 = true,
                    None => out.push((n, Origin::Bundled, false)),
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Resolves `require(name)`: user directories, then Rust primitives, then bundled Lua modules.
    pub fn find_module(&self, name: &str) -> Option<ModuleSource> {
        let rel = name.replace('.', "/");
        for dir in self.dirs.iter() {
            for candidate in [
                dir.join("stdlib").join(format!("{rel}.lua")),
                dir.join("stdlib").join(&rel).join("init.lua"),
                dir.join(format!("{rel}.lua")),
            ] {
                if candidate.is_file() {
                    let code = std::fs::read_to_string(&candidate).ok()?;
                    return Some(ModuleSource::Lua {
                        chunk_name: format!("@{}", candidate.display()),
                        code,
                        path: Some(candidate),
                    });
                }
            }
        }
        if let Some(open) = rust_module(name) {
            return Some(ModuleSource::Rust(open));
        }
        for candidate in [format!("{rel}.lua"), format!("{rel}/init.lua")] {
            if let Some(f) = BUNDLED_STDLIB.get_file(&candidate) {
                return Some(ModuleSource::Lua {
                    chunk_name: format!("@bundled/stdlib/{candidate}"),
                    code: f.contents_utf8()?.to_string(),
                    path: None,
                });
            }
        }
        None
    }

    /// The bundled Lua modules (`rewind.snapshot`, ...), by module name.
    pub fn bundled_lua_modules() -> Vec<String> {
        let mut out = Vec::new();
        collect_modules(&BUNDLED_STDLIB, &mut out);
        out.sort();
        out
    }
}

fn collect_modules(dir: &Dir<'static>, out: &mut Vec<String>) {
    for f in dir.files() {
        let p = f.path();
        if p.extension().is_some_and(|e| e == "lua") && !p.starts_with("types") {
            let s = p.with_extension("").to_string_lossy().replace('/', ".");
            out.push(s.trim_end_matches(".init").to_string());
        }
    }
    for d in dir.dirs() {
        if !d.path().starts_with("types") {
            collect_modules(d, out);
        }
    }
}

fn name_of(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn read_file_source(name: String, path: &Path) -> Option<ScriptSource> {
    let code = std::fs::read_to_string(path).ok()?;
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Some(ScriptSource {
        name,
        chunk_name: format!("@{}", path.display()),
        code,
        origin: Origin::File(abs),
    })
}

/// Names close to `name`, for "did you mean".
pub fn close_names<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(s, c)| *s > 0.75 || c.contains(name) || name.contains(*c))
        .collect();
    scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// Copies the bundled scripts/ and stdlib/ to `dest` for editing. Existing files are kept unless `force`.
pub fn export(dest: &Path, force: bool) -> anyhow::Result<Vec<PathBuf>> {
    use anyhow::Context;
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    for (root, dir) in [("scripts", &BUNDLED_SCRIPTS), ("stdlib", &BUNDLED_STDLIB)] {
        let mut files = Vec::new();
        collect_files(dir, &mut files);
        for f in files {
            let target = dest.join(root).join(f.path());
            if target.exists() && !force {
                skipped.push(target);
                continue;
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            crate::base::files::write_atomic(&target, f.contents())
                .with_context(|| format!("writing {}", target.display()))?;
            written.push(target);
        }
    }
    if !skipped.is_empty() {
        anyhow::bail!(super::UsageError(format!(
            "{} file(s) already exist in {} (first: {}); pass --force to overwrite them",
            skipped.len(),
            dest.display(),
            skipped[0].display()
        )));
    }
    Ok(written)
}

fn collect_files(dir: &'static Dir<'static>, out: &mut Vec<&'static include_dir::File<'static>>) {
    out.extend(dir.files());
    for d in dir.dirs() {
        collect_files(d, out);
    }
}

/// The directories of `REWIND_PATH` (colon-separated; empty entries skipped).
pub fn env_dirs() -> Vec<PathBuf> {
    std::env::var("REWIND_PATH")
        .map(|env| {
            env.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}
