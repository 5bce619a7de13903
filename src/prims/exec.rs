//! `rewind.exec`: run programs without a shell (unless asked), with args, env, a timeout, captured
//! output, and a streaming mode whose stdout is a reader (`pg_dump` straight into a tar or an object).
//! A non-zero exit is an error carrying the last lines of stderr.

use std::collections::VecDeque;
use std::process::Stdio;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use mlua::{Lua, Table, UserData, UserDataMethods, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::base::errors::IntoLua;
use crate::base::stream::Reader;

const STDERR_TAIL_LINES: usize = 20;

/// What to run, read from `{ "prog", "arg", ..., env = {}, cwd =, shell =, timeout =, stdin = }`.
struct Spec {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    clear_env: bool,
    cwd: Option<String>,
    timeout: Option<Duration>,
    stdin: Value,
    check: bool,
}

impl Spec {
    fn from_table(t: &Table) -> mlua::Result<Spec> {
        let mut argv: Vec<String> = t.sequence_values::<String>().collect::<mlua::Result<_>>()?;
        if let Some(cmd) = t.get::<Option<String>>("cmd")? {
            argv.insert(0, cmd);
        }
        if let Some(args) = t.get::<Option<Vec<String>>>("args")? {
            argv.extend(args);
        }
        if t.get::<Option<bool>>("shell")?.unwrap_or(false) {
            // Explicit shell mode: the arguments are one shell command line.
            argv = vec!["sh".into(), "-c".into(), argv.join(" ")];
        }
        if argv.is_empty() {
            return Err(mlua::Error::runtime(
                "exec: no program given (expected {\"prog\", \"arg\", ...})",
            ));
        }
        let mut env = Vec::new();
        if let Some(e) = t.get::<Option<Table>>("env")? {
            for pair in e.pairs::<String, String>() {
                env.push(pair?);
            }
        }
        let timeout = match t.get::<Value>("timeout")? {
            Value::Nil => None,
            v => Some(Duration::from_secs_f64(
                crate::base::duration::parse_duration(&v.to_string()?)
                    .map_err(mlua::Error::runtime)?,
            )),
        };
        Ok(Spec {
            argv,
            env,
            clear_env: t.get::<Option<bool>>("clear_env")?.unwrap_or(false),
            cwd: t.get("cwd")?,
            timeout,
            stdin: t.get("stdin")?,
            check: t.get::<Option<bool>>("check")?.unwrap_or(true),
        })
    }

    fn display(&self) -> String {
        crate::base::redact::redact(&self.argv.join(" "))
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]);
        if self.clear_env {
            c.env_clear();
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c.kill_on_drop(true);
        // Its own process group, so that a cancelled run stops what the program started too (the
        // `sleep` under `sh -c`, a dump piped through a filter), not only the program itself.
        c.process_group(0);
        c
    }
}

/// Kills a program's whole process group when dropped before `disarm`: the run was cancelled (Ctrl-C,
/// SIGTERM, a lost lease) or the program timed out. A program that ended normally keeps whatever it
/// deliberately left running.
struct GroupKill {
    pgid: Option<i32>,
}

impl GroupKill {
    fn new(child: &Child) -> GroupKill {
        GroupKill {
            pgid: child.id().map(|p| p as i32),
        }
    }
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: killpg only sends a signal; the group is the one this program leads.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
    }
}

type Tail = Arc<Mutex<VecDeque<String>>>;

/// Reads stderr in the background, keeping only its last lines (and echoing them at debug level).
fn collect_stderr(child: &mut Child, name: String) -> (Tail, tokio::task::JoinHandle<()>) {
    let tail: Tail = Arc::new(Mutex::new(VecDeque::new()));
    let t2 = tail.clone();
    let stderr = child.stderr.take();
    let h = tokio::spawn(tracing::Instrument::in_current_span(async move {
        let Some(stderr) = stderr else { return };
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(target: "exec", "{name}: {}", crate::base::redact::redact(&line));
            let mut t = t2.lock().unwrap_or_else(|e| e.into_inner());
            if t.len() == STDERR_TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
    }));
    (tail, h)
}

fn tail_text(tail: &Tail) -> String {
    tail.lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

fn exit_error(what: &str, status: std::process::ExitStatus, tail: &str) -> anyhow::Error {
    let code = match status.code() {
        Some(c) => format!("status {c}"),
        None => "a signal".to_string(),
    };
    let tail = crate::base::redact::redact(tail.trim());
    if tail.is_empty() {
        anyhow::anyhow!("{what} exited with {code}")
    } else {
        anyhow::anyhow!("{what} exited with {code}; last lines of stderr:\n{tail}")
    }
}

async fn feed_stdin(
    child: &mut Child,
    stdin: Value,
) -> anyhow::Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
    let Some(mut pipe) = child.stdin.take() else {
        return Ok(None);
    };
    let reader = match stdin {
        Value::Nil => return Ok(None),
        v => crate::base::stream::reader_from_value(&v, "exec stdin")
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    Ok(Some(tokio::spawn(async move {
        let mut r = reader;
        tokio::io::copy(&mut r, &mut pipe).await?;
        pipe.shutdown().await
    })))
}

/// `exec.run{...}`: waits for the program and returns `{status, stdout, stderr}`.
async fn run(lua: Lua, spec: Spec) -> mlua::Result<Table> {
    let what = spec.display();
    let mut cmd = spec.command();
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if spec.stdin.is_nil() {
            Stdio::null()
        } else {
            Stdio::piped()
        });
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", spec.argv[0]))
        .lua_err()?;
    let mut group = GroupKill::new(&child);
    let feeder = feed_stdin(&mut child, spec.stdin.clone()).await.lua_err()?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (r1, r2) = tokio::join!(
            async {
                match stdout.as_mut() {
                    Some(s) => s.read_to_end(&mut out).await.map(|_| ()),
                    None => Ok(()),
                }
            },
            async {
                match stderr.as_mut() {
                    Some(s) => s.read_to_end(&mut err).await.map(|_| ()),
                    None => Ok(()),
                }
            }
        );
        r1?;
        r2?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, out, err))
    };
    let (status, out, err) = match spec.timeout {
        Some(d) => tokio::time::timeout(d, work)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "{what} timed out after {} and was killed",
                    humantime::format_duration(d)
                )
            })
            .lua_err()?,
        None => work.await,
    }
    .with_context(|| format!("running {what}"))
    .lua_err()?;
    group.disarm();
    if let Some(f) = feeder {
        let _ = f.await;
    }
    let err_text = String::from_utf8_lossy(&err).to_string();
    if spec.check && !status.success() {
        let lines: Vec<&str> = err_text.lines().collect();
        let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
        return Err(exit_error(&what, status, &tail)).lua_err();
    }
    let t = lua.create_table()?;
    t.set("status", status.code().unwrap_or(-1))?;
    t.set("ok", status.success())?;
    t.set("stdout", lua.create_string(&out)?)?;
    t.set("stderr", err_text)?;
    Ok(t)
}

/// A running program from `exec.spawn`; `p:stdout()` is a reader, `p:wait()` checks the exit.
pub struct Process {
    child: Rc<tokio::sync::Mutex<Option<Child>>>,
    stdout: std::cell::RefCell<Option<Reader>>,
    tail: Tail,
    stderr_task: std::cell::RefCell<Option<tokio::task::JoinHandle<()>>>,
    what: String,
    check: bool,
    timeout: Option<Duration>,
    group: std::cell::RefCell<GroupKill>,
}

impl UserData for Process {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("stdout", |_, this, ()| {
            this.stdout.borrow_mut().take().ok_or_else(|| {
                mlua::Error::runtime(format!("stdout of {} was already taken", this.what))
            })
        });
        m.add_async_method("wait", |lua, this, ()| async move {
            // Nobody will read stdout now: drain it, or a chatty program blocks on a full pipe forever.
            let unread = this.stdout.borrow_mut().take();
            if let Some(Ok(mut r)) = unread.map(|r| r.take()) {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut r, &mut tokio::io::sink()).await;
                });
            }
            let child = this.child.clone();
            let mut guard = child.lock().await;
            let Some(c) = guard.as_mut() else {
                return Err(mlua::Error::runtime(format!(
                    "{} was already waited for",
                    this.what
                )));
            };
            let status = match this.timeout {
                Some(d) => match tokio::time::timeout(d, c.wait()).await {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = c.kill().await;
                        this.group.replace(GroupKill { pgid: None }); // dropping the old one kills the group
                        return Err(anyhow::anyhow!(
                            "{} timed out after {} and was killed",
                            this.what,
                            humantime::format_duration(d)
                        ))
                        .lua_err();
                    }
                },
                None => c.wait().await,
            }
            .with_context(|| format!("waiting for {}", this.what))
            .lua_err()?;
            guard.take();
            this.group.borrow_mut().disarm();
            let task = this.stderr_task.borrow_mut().take();
            if let Some(h) = task {
                let _ = h.await;
            }
            let tail = tail_text(&this.tail);
            if this.check && !status.success() {
                return Err(exit_error(&this.what, status, &tail)).lua_err();
            }
            let t = lua.create_table()?;
            t.set("status", status.code().unwrap_or(-1))?;
            t.set("ok", status.success())?;
            t.set("stderr", tail)?;
            Ok(t)
        });
        m.add_async_method("kill", |_, this, ()| async move {
            if let Some(c) = this.child.lock().await.as_mut() {
                let _ = c.kill().await;
            }
            this.group.replace(GroupKill { pgid: None });
            Ok(())
        });
    }
}

async fn spawn(spec: Spec) -> mlua::Result<Process> {
    let what = spec.display();
    let mut cmd = spec.command();
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if spec.stdin.is_nil() {
            Stdio::null()
        } else {
            Stdio::piped()
        });
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", spec.argv[0]))
        .lua_err()?;
    let group = GroupKill::new(&child);
    let _ = feed_stdin(&mut child, spec.stdin.clone()).await.lua_err()?;
    let (tail, task) = collect_stderr(&mut child, spec.argv[0].clone());
    let stdout = child
        .stdout
        .take()
        .map(|s| -> anyhow::Result<Reader> {
            let r = crate::base::pipe::reader(s.into_owned_fd()?)?;
            Ok(Reader::new(format!("{} stdout", spec.argv[0]), r))
        })
        .transpose()
        .lua_err()?;
    Ok(Process {
        child: Rc::new(tokio::sync::Mutex::new(Some(child))),
        stdout: std::cell::RefCell::new(stdout),
        tail,
        stderr_task: std::cell::RefCell::new(Some(task)),
        what,
        check: spec.check,
        timeout: spec.timeout,
        group: std::cell::RefCell::new(group),
    })
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "run",
        lua.create_async_function(|lua, spec: Table| async move {
            run(lua, Spec::from_table(&spec)?).await
        })?,
    )?;
    t.set(
        "spawn",
        lua.create_async_function(|_, spec: Table| async move {
            spawn(Spec::from_table(&spec)?).await
        })?,
    )?;
    // which(name): the full path of a program on PATH, or nil.
    t.set(
        "which",
        lua.create_function(|_, name: String| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            Ok(std::env::split_paths(&path)
                .map(|d| d.join(&name))
                .find(|p| p.is_file())
                .map(|p| p.display().to_string()))
        })?,
    )?;
    Ok(t)
}
