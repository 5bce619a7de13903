//! `rewind.http`: HTTP requests with JSON bodies, timeouts, and retries with backoff on 429, 5xx and
//! connection errors. Errors carry the status and body; credentials in headers and URLs are redacted.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use futures::TryStreamExt;
use mlua::{Lua, Table, Value};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::base::errors::IntoLua;
use crate::base::redact::{looks_secret, redact, redact_url};
use crate::base::retry::{Policy, Retryable};
use crate::base::stream::Reader;

const BODY_IN_ERROR: usize = 2000;

pub fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(concat!("rewind/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(32)
            .build()
            .expect("http client")
    })
}

struct Req {
    method: reqwest::Method,
    url: String,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// A streamed body (a Reader): sent once, so such a request is never retried.
    body_stream: std::sync::Mutex<Option<crate::base::stream::BoxReader>>,
    /// HTTP basic auth (user, password); the password is a secret.
    basic_auth: Option<(String, String)>,
    form: Option<Vec<(String, String)>>,
    timeout: Duration,
    retries: u32,
    retry_on: Vec<u16>,
    backoff: f64,
    check: bool,
    stream: bool,
}

fn parse(
    lua: &Lua,
    method: Option<&str>,
    url: Option<String>,
    opts: Option<Table>,
) -> mlua::Result<Req> {
    let opts = match opts {
        Some(o) => o,
        None => lua.create_table()?,
    };
    let method = match method {
        Some(m) => m.to_string(),
        None => opts
            .get::<Option<String>>("method")?
            .unwrap_or_else(|| "GET".into()),
    };
    let url = url
        .or(opts.get("url")?)
        .ok_or_else(|| mlua::Error::runtime("http: no url given"))?;
    let mut headers = HeaderMap::new();
    let mut body = None;
    if let Some(h) = opts.get::<Option<Table>>("headers")? {
        for pair in h.pairs::<String, String>() {
            let (k, v) = pair?;
            if looks_secret(&k) {
                // Register the credential part ("TD1 <key>" → "<key>") as well as the whole value.
                crate::base::redact::register(&v);
                if let Some((_, rest)) = v.split_once(' ') {
                    crate::base::redact::register(rest);
                }
            }
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("http: bad header name '{k}': {e}")))?;
            let mut value = HeaderValue::from_str(&v)
                .map_err(|_| mlua::Error::runtime(format!("http: bad value for header '{k}'")))?;
            value.set_sensitive(looks_secret(&k));
            headers.insert(name, value);
        }
    }
    let json: Value = opts.get("json")?;
    if !json.is_nil() {
        body = Some(
            serde_json::to_vec(&crate::base::values::from_lua(lua, &json)?)
                .map_err(mlua::Error::external)?,
        );
        headers
            .entry(reqwest::header::CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
    }
    let mut body_stream = None;
    match opts.get::<Value>("body")? {
        Value::Nil => {}
        Value::String(b) => body = Some(b.as_bytes().to_vec()),
        v @ Value::UserData(_) => {
            body_stream = Some(crate::base::stream::reader_from_value(&v, "http body")?)
        }
        other => {
            return Err(mlua::Error::runtime(format!(
                "http: body must be a string or a reader, got {}",
                other.type_name()
            )));
        }
    }
    let basic_auth = match opts.get::<Option<Table>>("basic_auth")? {
        Some(a) => {
            let user: String = a.get("user")?;
            let password: String = a.get::<Option<String>>("password")?.unwrap_or_default();
            crate::base::redact::register(&password);
            Some((user, password))
        }
        None => None,
    };
    let retries = match body_stream {
        Some(_) => 0,
        None => opts.get::<Option<u32>>("retries")?.unwrap_or(3),
    };
    let form = opts
        .get::<Option<Table>>("form")?
        .map(|f| {
            f.pairs::<String, String>()
                .collect::<mlua::Result<Vec<_>>>()
        })
        .transpose()?;
    let query = opts
        .get::<Option<Table>>("query")?
        .map(|q| {
            q.pairs::<String, Value>()
                .map(|p| p.and_then(|(k, v)| Ok((k, v.to_string()?))))
                .collect::<mlua::Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let timeout = match opts.get::<Value>("timeout")? {
        Value::Nil => Duration::from_secs(60),
        v => Duration::from_secs_f64(
            crate::base::duration::parse_duration(&v.to_string()?).map_err(mlua::Error::runtime)?,
        ),
    };
    Ok(Req {
        method: method
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| mlua::Error::runtime(format!("http: bad method '{method}'")))?,
        url,
        headers,
        query,
        body,
        body_stream: std::sync::Mutex::new(body_stream),
        basic_auth,
        form,
        timeout,
        retries,
        retry_on: opts
            .get::<Option<Vec<u16>>>("retry_on")?
            .unwrap_or_else(|| vec![429, 500, 502, 503, 504]),
        backoff: opts.get::<Option<f64>>("backoff")?.unwrap_or(0.5),
        check: opts.get::<Option<bool>>("check")?.unwrap_or(true),
        stream: opts.get::<Option<bool>>("stream")?.unwrap_or(false),
    })
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    // Retry-After is either seconds or an HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT").
    let secs = v.trim().parse::<f64>().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc2822(v.trim())
            .ok()
            .map(|at| {
                (at.timestamp_millis() - chrono::Utc::now().timestamp_millis()) as f64 / 1000.0
            })
    })?;
    Some(Duration::from_secs_f64(secs.clamp(0.0, 60.0)))
}

/// The longest wait between two attempts (a Retry-After answer may ask for up to 60 s).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Waits `backoff`, 2·`backoff`, 4·`backoff`... seconds before the retries, each plus up to a quarter at
/// random and at most 30 s.
fn policy(req: &Req) -> Policy {
    // Capped first, so that no base overflows a Duration (NaN counts as the cap, a negative base as 0).
    let first = Duration::try_from_secs_f64(req.backoff.min(MAX_BACKOFF.as_secs_f64()))
        .unwrap_or(Duration::ZERO);
    Policy::doubling(first, req.retries as usize)
        .with_jitter(0.25)
        .with_max_delay(MAX_BACKOFF)
}

/// One attempt that did not give the final answer.
struct Failed {
    /// Counted from 1.
    attempt: u32,
    why: Why,
}

enum Why {
    /// Answered with a status in `retry_on`; once retries are spent, the answer is the result.
    Status(reqwest::Response),
    /// No answer (the URL left out of the error); retried when `transient`.
    Transport {
        error: reqwest::Error,
        transient: bool,
    },
}

async fn send(lua: Lua, req: Req) -> mlua::Result<Table> {
    let shown_url = redact_url(&req.url);
    let what = format!("{} {}", req.method, shown_url);
    let req = &req;
    let mut attempts = 0u32;
    let outcome = (move || {
        attempts += 1;
        let attempt = attempts;
        let mut b = client()
            .request(req.method.clone(), &req.url)
            .headers(req.headers.clone())
            .timeout(req.timeout);
        if !req.query.is_empty() {
            b = b.query(&req.query);
        }
        if let Some(body) = &req.body {
            b = b.body(body.clone());
        }
        if let Some((user, password)) = &req.basic_auth {
            b = b.basic_auth(user, Some(password));
        }
        if let Some(r) = req.body_stream.lock().unwrap().take() {
            b = b.body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(r)));
        }
        if let Some(form) = &req.form {
            b = b.form(form);
        }
        async move {
            let why = match b.send().await {
                Ok(resp) if req.retry_on.contains(&resp.status().as_u16()) => Why::Status(resp),
                Ok(resp) => return Ok(resp),
                Err(e) => Why::Transport {
                    transient: e.is_connect() || e.is_timeout() || e.is_request(),
                    error: e.without_url(),
                },
            };
            Err(Failed { attempt, why })
        }
    })
    .retry(policy(req))
    .when(|f| match &f.why {
        Why::Status(_) => true,
        Why::Transport { transient, .. } => *transient,
    })
    // A Retry-After answer sets the wait itself (the policy still counts the retry).
    .adjust(|f, delay| match &f.why {
        Why::Status(resp) => delay.map(|d| retry_after(resp).unwrap_or(d)),
        Why::Transport { .. } => delay,
    })
    .notify(|f, delay| match &f.why {
        Why::Status(resp) => {
            tracing::debug!(target: "http", "{what}: {} (attempt {}), retrying in {:?}", resp.status(), f.attempt, delay)
        }
        Why::Transport { error, .. } => {
            tracing::debug!(target: "http", "{what}: {} (attempt {}), retrying in {:?}", redact(&error.to_string()), f.attempt, delay)
        }
    })
    .await;
    let resp = match outcome {
        Ok(resp) => resp,
        Err(Failed {
            why: Why::Status(resp),
            ..
        }) => resp,
        Err(Failed {
            attempt,
            why: Why::Transport { error, .. },
        }) => {
            return Err(anyhow::Error::new(error)
                .context(format!("{what} failed after {attempt} attempt(s)")))
            .lua_err();
        }
    };
    let status = resp.status();
    let headers = lua.create_table()?;
    for (k, v) in resp.headers() {
        headers.set(
            k.as_str(),
            String::from_utf8_lossy(v.as_bytes()).to_string(),
        )?;
    }
    let t = lua.create_table()?;
    t.set("status", status.as_u16())?;
    t.set("headers", headers)?;
    t.set("url", shown_url)?;
    if req.stream && status.is_success() {
        let s = resp.bytes_stream().map_err(std::io::Error::other);
        t.set(
            "reader",
            Reader::new(what, Box::pin(tokio_util::io::StreamReader::new(s))),
        )?;
        return Ok(t);
    }
    let is_json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("reading the answer to {what}"))
        .lua_err()?;
    if req.check && !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(BODY_IN_ERROR)]).to_string();
        return Err(crate::base::errors::lua_error(anyhow::anyhow!(
            "{what} answered {status}: {}",
            redact(text.trim())
        )));
    }
    if is_json
        && !body.is_empty()
        && let Ok(v) = crate::base::values::decode(&lua, &body)
    {
        t.set("json", v)?;
    }
    t.set("body", lua.create_string(&body)?)?;
    Ok(t)
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "request",
        lua.create_async_function(|lua, opts: Table| async move {
            let req = parse(&lua, None, None, Some(opts))?;
            send(lua, req).await
        })?,
    )?;
    for m in ["get", "post", "put", "patch", "delete", "head"] {
        t.set(
            m,
            lua.create_async_function(
                move |lua, (url, opts): (String, Option<Table>)| async move {
                    let req = parse(&lua, Some(m), Some(url), opts)?;
                    send(lua, req).await
                },
            )?,
        )?;
    }
    Ok(t)
}
