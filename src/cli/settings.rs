//! The settings every command shares and where each came from. Precedence: a command-line flag, then
//! its REWIND_* variable, then the config file (`$XDG_CONFIG_HOME/rewind/config.yaml`, or the one
//! `--config FILE` / `REWIND_CONFIG` names), then the built-in default. Clap reads the flags and the
//! variables; this file reads the config file and fills in what neither gave.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::{Deserialize, Serialize};

use rewind::base::duration::parse_duration;

use super::{Cli, LogFormat};

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Flag(&'static str),
    Env(String),
    File(PathBuf),
    Default,
}

impl Source {
    /// Higher wins when two settings disagree (-v against REWIND_QUIET).
    fn rank(&self) -> u8 {
        match self {
            Source::Flag(_) => 3,
            Source::Env(_) => 2,
            Source::File(_) => 1,
            Source::Default => 0,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File(p) => write!(f, "config {}", p.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// The config file's keys. Unknown keys are errors: a typo must not be silently ignored.
#[derive(Deserialize, Default)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of settings (store, log_format, path, verbose, quiet, daemon)"
)]
pub struct FileConfig {
    pub store: Option<String>,
    pub log_format: Option<LogFormat>,
    pub path: Option<Vec<PathBuf>>,
    pub verbose: Option<Verbosity>,
    pub quiet: Option<bool>,
    pub daemon: Option<DaemonFile>,
}

/// `rewind daemon`'s defaults (`daemon.state` is also `rewind jobs --state`'s). Keys are the flags'
/// names with `_` for `-`; durations are checked here so that a bad one names the file and line.
#[derive(Deserialize, Serialize, Default, Debug, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of daemon flags (jobs, state, listen, ...)"
)]
pub struct DaemonFile {
    pub jobs: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub listen: Option<String>,
    pub max_concurrent: Option<usize>,
    pub token_file: Option<PathBuf>,
    pub allow: Option<Vec<String>>,
    #[serde(default, deserialize_with = "duration")]
    pub grace: Option<String>,
    pub keep_runs: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    pub keep_for: Option<String>,
    pub users: Option<PathBuf>,
    pub trust_proxy: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    pub session_idle: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    pub session_max: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub cluster: Option<String>,
    pub member: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    pub member_every: Option<String>,
}

/// A duration checked while it is read, so that its error names the key (`daemon.grace: ...`).
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration like 90s, 10m, 2h, 60d")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<String, E> {
            parse_duration(s).map_err(|e| E::custom(format!("'{s}': {e}")))?;
            Ok(s.to_string())
        }
    }
    d.deserialize_str(V).map(Some)
}

/// `verbose:` in the file: a count (2 is -vv) or true/false.
#[derive(Clone, Copy)]
pub struct Verbosity(pub u8);

impl<'de> Deserialize<'de> for Verbosity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Verbosity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count (0, 1, 2) or true/false")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Verbosity, E> {
                Ok(Verbosity(b.into()))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Verbosity, E> {
                Ok(Verbosity(n.min(u8::MAX as u64) as u8))
            }
        }
        d.deserialize_any(V)
    }
}

/// The config file in use: its path (None: `--config none`), why that one, whether it exists.
pub struct ConfigRef {
    pub path: Option<PathBuf>,
    pub source: Source,
    pub found: bool,
}

/// Every shared setting with its source; `file` holds the config file's other sections.
pub struct Settings {
    pub config: ConfigRef,
    pub file: FileConfig,
    pub store: (String, Source),
    pub log_format: (LogFormat, Source),
    pub verbose: (u8, Source),
    pub quiet: (bool, Source),
    pub paths: Vec<(PathBuf, Source)>,
}

impl Settings {
    /// The config file's `path` entries: searched after `--path` and REWIND_PATH.
    pub fn config_dirs(&self) -> Vec<PathBuf> {
        self.paths
            .iter()
            .filter(|(_, s)| matches!(s, Source::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    pub fn daemon(&self) -> DaemonFile {
        self.file.daemon.clone().unwrap_or_default()
    }

    pub fn file_source(&self) -> Source {
        file_source(&self.config)
    }
}

/// The default config file: `$XDG_CONFIG_HOME/rewind/config.yaml`, else `~/.config/rewind/config.yaml`.
pub fn default_path() -> Option<PathBuf> {
    // The XDG spec ignores a relative XDG_CONFIG_HOME.
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home().map(|h| h.join(".config")))?;
    Some(base.join("rewind/config.yaml"))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Which config file applies: `--config FILE`, else REWIND_CONFIG, else the default; `none` or an empty
/// value means no file.
pub fn locate(m: &ArgMatches) -> ConfigRef {
    let given = m.try_get_one::<String>("config").ok().flatten();
    let (path, source) = match (given, m.value_source("config")) {
        (Some(v), Some(ValueSource::CommandLine)) => (named(v), Source::Flag("--config")),
        (Some(v), Some(ValueSource::EnvVariable)) => {
            (named(v), Source::Env("REWIND_CONFIG".into()))
        }
        _ => (default_path(), Source::Default),
    };
    let found = path.as_ref().is_some_and(|p| p.exists());
    ConfigRef {
        path,
        source,
        found,
    }
}

fn named(v: &str) -> Option<PathBuf> {
    let v = v.trim();
    (!v.is_empty() && v != "none").then(|| expand_home(Path::new(v)))
}

/// Reads the config file. A missing default file is no config; a missing file named by --config or
/// REWIND_CONFIG is an error, as is anything in it that is not a known key of the right type.
pub fn read(cfg: &ConfigRef) -> Result<FileConfig, String> {
    let Some(path) = &cfg.path else {
        return Ok(FileConfig::default());
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && cfg.source == Source::Default => {
            return Ok(FileConfig::default());
        }
        Err(e) => {
            return Err(format!(
                "config file {} ({}): {e}",
                path.display(),
                cfg.source
            ));
        }
    };
    parse(&text, path)
}

/// Parses a config file's text; relative paths in it are relative to its directory.
pub fn parse(text: &str, path: &Path) -> Result<FileConfig, String> {
    // An empty file (or only comments) is an empty config.
    let parsed: Option<FileConfig> = serde_norway::from_str(text).map_err(|e| {
        let msg = e.to_string().replace("unknown field", "unknown key");
        match e.location() {
            Some(l) => {
                let at = format!(" at line {} column {}", l.line(), l.column());
                let msg = msg.strip_suffix(&at).unwrap_or(&msg);
                format!(
                    "config file {}:{}:{}: {msg}",
                    path.display(),
                    l.line(),
                    l.column()
                )
            }
            None => format!("config file {}: {msg}", path.display()),
        }
    })?;
    let mut cfg = parsed.unwrap_or_default();
    let base = path.parent().unwrap_or(Path::new("."));
    let at = |p: &mut PathBuf| *p = relative_to(base, p);
    if let Some(s) = &cfg.store {
        if s.trim().is_empty() {
            return Err(format!("config file {}: store is empty", path.display()));
        }
        if !s.contains("://") {
            cfg.store = Some(relative_to(base, Path::new(s)).display().to_string());
        }
    }
    cfg.path.iter_mut().flatten().for_each(at);
    if let Some(d) = &mut cfg.daemon {
        for p in [
            &mut d.jobs,
            &mut d.state,
            &mut d.token_file,
            &mut d.users,
            &mut d.tls_cert,
            &mut d.tls_key,
        ] {
            p.iter_mut().for_each(at);
        }
        if let Some(c) = &d.cluster
            && !c.contains("://")
        {
            d.cluster = Some(relative_to(base, Path::new(c)).display().to_string());
        }
    }
    Ok(cfg)
}

fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), home()) {
        (Ok(rest), Some(h)) => h.join(rest),
        _ => p.to_path_buf(),
    }
}

/// `~/x` under HOME, `/x` as is, `x` beside the config file.
fn relative_to(base: &Path, p: &Path) -> PathBuf {
    let p = expand_home(p);
    if p.is_absolute() { p } else { base.join(p) }
}

/// Reads the config file and settles every shared setting, writing the winners back into `cli` (which
/// logging and the commands read).
pub fn resolve(cli: &mut Cli, m: &ArgMatches) -> Result<Settings, String> {
    let config = locate(m);
    let file = read(&config)?;
    let from_file = file_source(&config);
    let pick = |id: &str, flag: &'static str, var: &str| match m.value_source(id) {
        Some(ValueSource::CommandLine) => Some(Source::Flag(flag)),
        Some(ValueSource::EnvVariable) => Some(Source::Env(var.into())),
        _ => None,
    };
    let log_format = settle(
        pick("log_format", "--log-format", "REWIND_LOG_FORMAT"),
        cli.log_format,
        file.log_format,
        &from_file,
    );
    let mut verbose = settle(
        pick("verbose", "-v", "REWIND_VERBOSE"),
        cli.verbose,
        file.verbose.map(|v| v.0),
        &from_file,
    );
    let mut quiet = settle(
        pick("quiet", "-q", "REWIND_QUIET"),
        cli.quiet,
        file.quiet,
        &from_file,
    );
    // -v on the command line beats REWIND_QUIET or `quiet: true` in the file, and the other way round.
    if verbose.0 > 0 && quiet.0 {
        if verbose.1.rank() > quiet.1.rank() {
            quiet.0 = false;
        } else if quiet.1.rank() > verbose.1.rank() {
            verbose.0 = 0;
        }
    }
    let store = match std::env::var("REWIND_STORE") {
        Ok(u) if !u.trim().is_empty() => (u, Source::Env("REWIND_STORE".into())),
        _ => match &file.store {
            Some(u) => {
                rewind::prims::storage::set_configured_default(u);
                (u.clone(), from_file.clone())
            }
            None => (rewind::prims::storage::local_default(), Source::Default),
        },
    };
    let mut paths: Vec<(PathBuf, Source)> = cli
        .paths
        .iter()
        .map(|p| (p.clone(), Source::Flag("--path")))
        .collect();
    let env = rewind::host::search::env_dirs();
    paths.extend(
        env.into_iter()
            .map(|p| (p, Source::Env("REWIND_PATH".into()))),
    );
    paths.extend(
        file.path
            .iter()
            .flatten()
            .map(|p| (p.clone(), from_file.clone())),
    );
    cli.log_format = log_format.0;
    cli.verbose = verbose.0;
    cli.quiet = quiet.0;
    Ok(Settings {
        config,
        file,
        store,
        log_format,
        verbose,
        quiet,
        paths,
    })
}

/// What a value from the config file `cfg` is credited to.
fn file_source(cfg: &ConfigRef) -> Source {
    cfg.path.clone().map_or(Source::Default, Source::File)
}

/// One setting's winner: the flag or its variable (`given`: clap already put it in `cli`), else the
/// config file's value, else the default (also in `cli`).
fn settle<T>(given: Option<Source>, cli: T, file: Option<T>, from_file: &Source) -> (T, Source) {
    match (given, file) {
        (Some(s), _) => (cli, s),
        (None, Some(v)) => (v, from_file.clone()),
        (None, None) => (cli, Source::Default),
    }
}

/// True when neither the command line nor the variable gave the argument `id` (the config file may).
pub fn unset(m: &ArgMatches, id: &str) -> bool {
    !matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The config file's `path` for shell completion: an unreadable file adds nothing (a TAB must not fail).
pub fn completion_dirs(m: &ArgMatches) -> Vec<PathBuf> {
    read(&locate(m))
        .ok()
        .and_then(|f| f.path)
        .unwrap_or_default()
}

/// An empty REWIND_* variable of a flag counts as unset (`REWIND_LOG_FORMAT=` in a CI file), as if it
/// were not there; clap would take it as an empty value. An empty REWIND_CONFIG keeps its meaning: no
/// config file.
pub fn drop_empty_vars() {
    let cmd = <Cli as clap::CommandFactory>::command();
    for var in super::every_arg(&cmd).filter_map(|a| a.get_env()) {
        if var != "REWIND_CONFIG" && std::env::var_os(var).is_some_and(|v| v.is_empty()) {
            // SAFETY: the first thing main does; no other thread exists yet.
            unsafe { std::env::remove_var(var) };
        }
    }
}
