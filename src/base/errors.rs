//! Error classification and formatting: exit codes, `file:line: message`, tracebacks, cause chains.

use std::fmt;

/// Bad usage, bad params, unknown script: exit code 2.
#[derive(Debug, Clone)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Converts a primitive's error into a Lua error, keeping the whole cause chain and removing secrets.
pub fn lua_error(e: anyhow::Error) -> mlua::Error {
    if let Some(u) = e.downcast_ref::<UsageError>() {
        return mlua::Error::external(UsageError(crate::base::redact::redact(&u.0)));
    }
    mlua::Error::RuntimeError(crate::base::redact::redact(&format!("{e:#}")))
}

/// Extension for `Result<T, anyhow::Error>` → `mlua::Result<T>`.
pub trait IntoLua<T> {
    fn lua_err(self) -> mlua::Result<T>;
}

impl<T, E: Into<anyhow::Error>> IntoLua<T> for Result<T, E> {
    fn lua_err(self) -> mlua::Result<T> {
        self.map_err(|e| lua_error(e.into()))
    }
}

/// Finds a usage error anywhere in an mlua error chain.
pub fn find_usage(e: &mlua::Error) -> Option<UsageError> {
    match e {
        mlua::Error::ExternalError(inner) => inner.downcast_ref::<UsageError>().cloned(),
        mlua::Error::CallbackError { cause, .. } => find_usage(cause),
        mlua::Error::WithContext { cause, .. } => find_usage(cause),
        _ => None,
    }
}

/// A Lua error as a user should see it: `file:line: message`, then the traceback.
pub struct Report {
    pub message: String,
    pub traceback: Option<String>,
    pub usage: bool,
}

impl Report {
    pub fn from_lua(e: &mlua::Error) -> Report {
        if let Some(u) = find_usage(e) {
            return Report {
                message: u.0,
                traceback: None,
                usage: true,
            };
        }
        let (message, traceback) = split(e);
        let message = crate::base::redact::redact(&strip_async_poll(&message));
        let traceback = traceback.map(|t| clean_traceback(&t));
        Report {
            message,
            traceback: traceback.map(|t| crate::base::redact::redact(&t)),
            usage: false,
        }
    }

    pub fn render(&self, with_traceback: bool) -> String {
        match (&self.traceback, with_traceback) {
            (Some(tb), true) => format!("{}\n{}", self.message, tb.trim_end()),
            _ => self.message.clone(),
        }
    }
}

/// Splits an mlua error into a one-line-ish message with the Lua location in front, and a traceback.
fn split(e: &mlua::Error) -> (String, Option<String>) {
    match e {
        mlua::Error::CallbackError { traceback, cause } => {
            let (inner, inner_tb) = split(cause);
            let inner = strip_async_poll(&inner);
            let tb = inner_tb.unwrap_or_else(|| traceback.clone());
            // An error raised by a primitive has no position; take the innermost Lua frame of the traceback.
            let msg = if has_position(&inner) {
                inner
            } else {
                match first_lua_frame(traceback) {
                    Some(pos) => format!("{pos}: {inner}"),
                    None => inner,
                }
            };
            (msg, Some(tb))
        }
        mlua::Error::RuntimeError(msg) => match msg.find("\nstack traceback:") {
            Some(i) => (msg[..i].to_string(), Some(msg[i + 1..].to_string())),
            None => (msg.clone(), None),
        },
        mlua::Error::SyntaxError { message, .. } => (message.clone(), None),
        mlua::Error::WithContext { context, cause } => {
            let (m, tb) = split(cause);
            (format!("{context}: {m}"), tb)
        }
        mlua::Error::ExternalError(inner) => {
            (crate::base::redact::redact(&chain(inner.as_ref())), None)
        }
        other => (other.to_string(), None),
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

pub fn has_position(msg: &str) -> bool {
    // "name.lua:12: ..." or "[string \"...\"]:3: ..."
    let head = msg.split(": ").next().unwrap_or("");
    head.rsplit_once(':').is_some_and(|(file, line)| {
        !file.is_empty() && line.chars().all(|c| c.is_ascii_digit()) && !line.is_empty()
    })
}

/// mlua's async wrapper is a Lua chunk named `__mlua_async_poll`; an error raised by an async primitive
/// carries its position ("__mlua_async_poll:29: ..."), which means nothing to a user.
fn strip_async_poll(msg: &str) -> String {
    let mut m = msg;
    loop {
        let rest = m.strip_prefix("runtime error: ").unwrap_or(m);
        match rest.strip_prefix("__mlua_async_poll:") {
            Some(after) => {
                let digits =
                    after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                m = after[digits..]
                    .strip_prefix(": ")
                    .unwrap_or(&after[digits..]);
            }
            None => return m.to_string(),
        }
    }
}

/// Drops the frames of mlua's async wrapper from a traceback.
fn clean_traceback(tb: &str) -> String {
    tb.lines()
        .filter(|l| l.trim() != "[C]: in local 'poll'")
        .map(
            |l| match l.trim_start().strip_prefix("__mlua_async_poll:") {
                Some(rest) => format!(
                    "\t[rust]:{}",
                    rest.trim_start_matches(|c: char| c.is_ascii_digit())
                        .trim_start_matches(':')
                ),
                None => l.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

fn first_lua_frame(traceback: &str) -> Option<String> {
    traceback.lines().skip(1).map(str::trim).find_map(|l| {
        if l.starts_with("[C]")
            || l.starts_with("[string \"?\"]")
            || l.starts_with("__mlua_async_poll:")
            || l.starts_with("(...tail calls")
        {
            return None;
        }
        let mut parts = l.splitn(3, ':');
        let file = parts.next()?;
        let line = parts.next()?;
        (line.chars().all(|c| c.is_ascii_digit()) && !line.is_empty())
            .then(|| format!("{file}:{line}"))
    })
}
