//! `rewind completions SHELL`: the completion script for bash, zsh or fish.
//!
//! The script is small and calls back into rewind for every completion (clap_complete's dynamic engine,
//! with `_REWIND_COMPLETE=SHELL` in the environment): command names and flags come from the running
//! binary, never out of date; script names come from the search path of the moment (`--path` on the
//! line, REWIND_PATH, the bundled ones); a script's params come from its declared `params` table, read
//! by loading the script the way `rewind help` does, which never calls its `run`. A static script could
//! not know the scripts a user adds after installing it.
//!
//! fish uses clap_complete's registration script as it is; zsh gets its shape, with `NAME=` completed
//! without a space after it and the file usable from `fpath`. Bash gets one of ours: bash splits words at
//! `=` and `:` (COMP_WORDBREAKS), so `from=./x` reaches a completion function as three words and clap's
//! bash script hands those to the engine; ours sends the line itself (COMP_LINE up to the cursor), which
//! rewind splits as the shell does, and answers with the part after the last break character, the part
//! bash replaces.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory, ValueEnum};
use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter};
use clap_complete::env::{CompleteEnv, EnvCompleter, Shells};

use rewind::host::params::{ParamSpec, ParamType};
use rewind::host::script::Script;
use rewind::host::{Host, SearchPath};

use super::{Cli, failed, load_script_quietly, runtime};

/// Set by the completion scripts: this run of rewind answers a completion request.
const VAR: &str = "_REWIND_COMPLETE";

#[derive(clap::Args)]
pub struct Args {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn run(args: Args) -> ExitCode {
    let shell: &dyn EnvCompleter = match args.shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
    };
    let mut out = Vec::new();
    // The script calls `rewind` from PATH: a packaged script must not name the build directory.
    let written = shell
        .write_registration(VAR, "rewind", "rewind", "rewind", &mut out)
        .and_then(|_| std::io::stdout().write_all(&out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(format!("writing the completion script: {e}")),
    }
}

/// When a completion script started this run, answers it on stdout and exits.
pub fn complete_if_asked() {
    CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .shells(Shells(&[&Bash, &Zsh, &Fish]))
        .complete();
}

/// The words before the one being completed (without the program name), for the completers below.
static LINE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether the shell shows descriptions beside the candidates (bash does not: no script is loaded for one).
static DESCRIBED: AtomicBool = AtomicBool::new(true);

/// Candidates for `words[index]`. Flags are offered once the word starts with `-`, so
/// `rewind run backup-dir <TAB>` lists the params, not every flag.
fn candidates(
    cmd: &mut clap::Command,
    words: Vec<String>,
    index: usize,
    cwd: Option<&Path>,
) -> Vec<CompletionCandidate> {
    *LINE.lock().unwrap_or_else(|e| e.into_inner()) = words[1.min(index)..index].to_vec();
    let current = words.get(index).cloned().unwrap_or_default();
    let args = words.into_iter().map(OsString::from).collect();
    let mut all = clap_complete::engine::complete(cmd, args, index, cwd).unwrap_or_default();
    let is_flag = |c: &CompletionCandidate| c.get_value().to_string_lossy().starts_with('-');
    if !current.starts_with('-') {
        all.retain(|c| !is_flag(c));
    }
    all
}

/// What the words before the current one say: the search path, the subcommand, its script, its params.
struct Context {
    search: SearchPath,
    script: Option<String>,
    given: Vec<String>,
}

fn context() -> Context {
    let words = LINE.lock().map(|w| w.clone()).unwrap_or_default();
    let argv = std::iter::once("rewind".to_string()).chain(words);
    let matches = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(argv);
    let mut ctx = Context {
        search: SearchPath::new(&[]),
        script: None,
        given: Vec::new(),
    };
    let Ok(m) = matches else { return ctx };
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut add_paths = |m: &clap::ArgMatches| {
        for p in m
            .try_get_many::<PathBuf>("paths")
            .ok()
            .flatten()
            .into_iter()
            .flatten()
        {
            if !paths.contains(p) {
                paths.push(p.clone());
            }
        }
    };
    add_paths(&m);
    if let Some((_, sub)) = m.subcommand() {
        add_paths(sub);
        ctx.script = sub.try_get_one::<String>("script").ok().flatten().cloned();
        if let Ok(Some(given)) = sub.try_get_many::<String>("params") {
            ctx.given = given.cloned().collect();
        }
    }
    // The line holds what was typed: `~/lib` is not expanded yet.
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for p in paths.iter_mut() {
        if let (Ok(rest), Some(home)) = (p.strip_prefix("~"), &home) {
            *p = home.join(rest);
        }
    }
    ctx.search = SearchPath::with_config(&paths, &super::settings::completion_dirs(&m));
    ctx
}

/// Loads a script by name for its description and params; its `run` is never called.
fn load(host: &Host, name: &str) -> Option<Script> {
    let source = host.search.find_script(name)?;
    load_script_quietly(host, &runtime(), &source, true).ok()
}

/// Script names on the search path (with their description's first line), or `.lua` files for a path.
pub fn scripts(current: &OsStr) -> Vec<CompletionCandidate> {
    let cur = current.to_string_lossy();
    if cur.contains('/') || cur.starts_with('.') || cur.ends_with(".lua") {
        return PathCompleter::any()
            .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "lua"))
            .complete(current);
    }
    let host = Host::new(context().search);
    let described = DESCRIBED.load(Ordering::Relaxed);
    host.search
        .list_scripts()
        .into_iter()
        .filter(|(name, _, _)| name.starts_with(&*cur))
        .map(|(name, _, _)| {
            let about = described
                .then(|| load(&host, &name))
                .flatten()
                .map(|s| s.description.lines().next().unwrap_or("").to_string());
            CompletionCandidate::new(name).help(about.map(Into::into))
        })
        .collect()
}

/// `rewind man NAME`: the subcommands' pages, then the scripts'.
pub fn pages(current: &OsStr) -> Vec<CompletionCandidate> {
    let cur = current.to_string_lossy();
    let mut out: Vec<CompletionCandidate> = super::man::command_pages()
        .into_iter()
        .filter_map(|(page, cmd)| {
            let name = page.strip_prefix("rewind-")?.to_string();
            let about = cmd.get_about().map(|a| a.to_string().into());
            name.starts_with(&*cur)
                .then(|| CompletionCandidate::new(name).help(about))
        })
        .collect();
    out.extend(scripts(current));
    out
}

/// A script's params as `NAME=` (the ones not given yet), or `NAME=VALUE` for a param with choices.
pub fn params(current: &OsStr) -> Vec<CompletionCandidate> {
    let ctx = context();
    let Some(script) = ctx.script else {
        return Vec::new();
    };
    let host = Host::new(ctx.search);
    let Some(s) = load(&host, &script) else {
        return Vec::new();
    };
    let cur = current.to_string_lossy();
    if let Some((name, value)) = cur.split_once('=') {
        let Some(p) = s
            .params
            .iter()
            .find(|p| p.name == name || p.aliases.iter().any(|a| a == name))
        else {
            return Vec::new();
        };
        let values: Vec<String> = match p.ty {
            ParamType::Boolean => vec!["true".into(), "false".into()],
            _ => p.choices.clone(),
        };
        return values
            .into_iter()
            .filter(|v| v.starts_with(value))
            .map(|v| CompletionCandidate::new(format!("{name}={v}")))
            .collect();
    }
    let given: Vec<&str> = ctx
        .given
        .iter()
        .filter_map(|g| g.split_once('=').map(|(k, _)| k))
        .collect();
    s.params
        .iter()
        .filter(|p| p.name.starts_with(&*cur) && !given.contains(&p.name.as_str()))
        .map(|p| CompletionCandidate::new(format!("{}=", p.name)).help(Some(about(p).into())))
        .collect()
}

fn about(p: &ParamSpec) -> String {
    let req = if p.required { ", required" } else { "" };
    match p.doc.lines().next() {
        Some(doc) if !doc.trim().is_empty() => format!("{}{req}: {doc}", p.ty.name()),
        _ => format!("{}{req}", p.ty.name()),
    }
}

/// The words of a shell line, as the shell splits them; a line ending in a space starts a new word.
fn split_line(line: &str) -> Vec<String> {
    let (mut words, open_quote) = match shlex::split(line) {
        Some(w) => (w, false),
        None => {
            let closed = shlex::split(&format!("{line}\""))
                .or_else(|| shlex::split(&format!("{line}'")))
                .unwrap_or_else(|| line.split_whitespace().map(String::from).collect());
            (closed, true)
        }
    };
    let ends_in_space = line.ends_with([' ', '\t']) && !line.ends_with("\\ ");
    if words.is_empty() || (ends_in_space && !open_quote) {
        words.push(String::new());
    }
    // `REWIND_PATH=dir rewind run ...`: the assignment applies to this completion too.
    while words.len() > 1
        && let Some((k, v)) = words[0].split_once('=')
        && !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        if k == "REWIND_PATH" {
            // SAFETY: a completion run is single-threaded here; nothing else reads the environment yet.
            unsafe { std::env::set_var(k, v) };
        }
        words.remove(0);
    }
    words
}

struct Bash;

const BASH_SCRIPT: &str = r#"# bash completion for rewind; generated by `rewind completions bash`.
_rewind() {
    local IFS=$'\013'
    compopt +o nospace 2>/dev/null
    COMPREPLY=( $(_REWIND_BREAKS="$COMP_WORDBREAKS" VAR=bash COMPLETER -- "${COMP_LINE:0:COMP_POINT}") )
    if [[ $? != 0 ]]; then
        unset COMPREPLY
    elif [[ ${#COMPREPLY[@]} == 1 && ${COMPREPLY[0]} == *[=/] ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}
if [[ ${BASH_VERSINFO[0]} -gt 4 || ${BASH_VERSINFO[0]} -eq 4 && ${BASH_VERSINFO[1]} -ge 4 ]]; then
    complete -o bashdefault -o default -o nosort -F _rewind BIN
else
    complete -o bashdefault -o default -F _rewind BIN
fi
"#;

impl EnvCompleter for Bash {
    fn name(&self) -> &'static str {
        "bash"
    }
    fn is(&self, name: &str) -> bool {
        name == "bash"
    }
    fn write_registration(
        &self,
        var: &str,
        _name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        registration(BASH_SCRIPT, var, bin, completer, buf)
    }
    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        cwd: Option<&Path>,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        DESCRIBED.store(false, Ordering::Relaxed);
        let line = args.first().map(|a| a.to_string_lossy().into_owned());
        let words = split_line(&line.unwrap_or_default());
        let index = words.len() - 1;
        // Bash replaces only the part of the word after its last break character (`from=` in
        // `from=./x`): answer with that part.
        let breaks: Vec<char> = std::env::var("_REWIND_BREAKS")
            .unwrap_or_else(|_| "=:".into())
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
            .collect();
        let current = &words[index];
        let cut = current
            .char_indices()
            .rev()
            .find(|(_, c)| breaks.contains(c))
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(0);
        let prefix = current[..cut].to_string();
        let values: Vec<String> = candidates(cmd, words, index, cwd)
            .iter()
            .filter_map(|c| {
                let v = c.get_value().to_string_lossy();
                v.strip_prefix(&prefix).map(str::to_string)
            })
            .collect();
        buf.write_all(values.join("\x0b").as_bytes())
    }
}

/// zsh: the shape of clap_complete's script, with values ending in `=` (a param's `NAME=`) completed
/// without a space after them. It works sourced and as a file `_rewind` on `fpath` (there, the first
/// completion runs the file as the completion function).
struct Zsh;

const ZSH_SCRIPT: &str = r#"#compdef BIN
# zsh completion for rewind; generated by `rewind completions zsh`.
_rewind() {
    local -a completions=("${(@f)$( \
        _CLAP_IFS=$'\n' _CLAP_COMPLETE_INDEX=$((CURRENT - 1)) VAR=zsh COMPLETER -- "${words[@]}" 2>/dev/null \
    )}")
    local -a dirs=() open=() other=()
    local c value
    for c in $completions; do
        value="${c%%:*}"
        if [[ $value == */ ]]; then
            dirs+=("${value%/}${c#$value}")
        elif [[ $value == *= ]]; then
            open+=("$c")
        else
            other+=("$c")
        fi
    done
    [[ -n $dirs ]] && _describe -V values dirs -S / -r /
    [[ -n $open ]] && _describe -V values open -S ''
    [[ -n $other ]] && _describe -V values other
    return 0
}
if [[ "${funcstack[1]}" == "_rewind" ]]; then
    _rewind "$@"
else
    compdef _rewind BIN
fi
"#;

impl EnvCompleter for Zsh {
    fn name(&self) -> &'static str {
        "zsh"
    }
    fn is(&self, name: &str) -> bool {
        name == "zsh"
    }
    fn write_registration(
        &self,
        var: &str,
        _name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        registration(ZSH_SCRIPT, var, bin, completer, buf)
    }
    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        cwd: Option<&Path>,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        let index: usize = std::env::var("_CLAP_COMPLETE_INDEX")
            .ok()
            .and_then(|i| i.parse().ok())
            .unwrap_or_default();
        let ifs = std::env::var("_CLAP_IFS").unwrap_or_else(|_| "\n".into());
        let mut words: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        while words.len() <= index {
            words.push(String::new());
        }
        let escape = |s: &str| s.replace('\\', "\\\\");
        let lines: Vec<String> = candidates(cmd, words, index, cwd)
            .iter()
            .map(|c| {
                let value = escape(&c.get_value().to_string_lossy()).replace(':', "\\:");
                match c.get_help() {
                    Some(h) => format!("{value}:{}", escape(first_line(&h.to_string()))),
                    None => value,
                }
            })
            .collect();
        buf.write_all(lines.join(&ifs).as_bytes())
    }
}

/// fish: clap_complete's registration; candidates one a line, `VALUE<TAB>description`.
struct Fish;

impl EnvCompleter for Fish {
    fn name(&self) -> &'static str {
        "fish"
    }
    fn is(&self, name: &str) -> bool {
        name == "fish"
    }
    fn write_registration(
        &self,
        var: &str,
        name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        clap_complete::env::Fish.write_registration(var, name, bin, completer, buf)
    }
    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        cwd: Option<&Path>,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        let words: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        let index = words.len().saturating_sub(1);
        for c in candidates(cmd, words, index, cwd) {
            write!(buf, "{}", c.get_value().to_string_lossy())?;
            if let Some(h) = c.get_help() {
                write!(buf, "\t{}", first_line(&h.to_string()))?;
            }
            writeln!(buf)?;
        }
        Ok(())
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Fills a registration script's VAR, COMPLETER and BIN (the last two shell-quoted).
fn registration(
    template: &str,
    var: &str,
    bin: &str,
    completer: &str,
    buf: &mut dyn Write,
) -> std::io::Result<()> {
    let completer = shlex::try_quote(completer).unwrap_or(completer.into());
    let bin = shlex::try_quote(bin).unwrap_or(bin.into());
    let script = template
        .replace("VAR", var)
        .replace("COMPLETER", &completer)
        .replace("BIN", &bin);
    buf.write_all(script.as_bytes())
}
