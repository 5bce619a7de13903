//! A fault-injecting HTTP/1.1 proxy for tests, put in front of a real server (moto, Azurite) on the
//! loopback interface. It forwards each request on a fresh upstream connection and relays the answer,
//! except where a rule says otherwise:
//!
//! - `Fault::DropAnswer`: forward the request (the server applies it), then close the client's
//!   connection without the answer: the client cannot know whether its request happened;
//! - `Fault::Reset`: reset the client's connection (TCP RST) without forwarding;
//! - `Fault::Status(code, s3_code)`: answer `code` with S3's XML error body (`SlowDown`, ...), not forwarded;
//! - `Fault::Stall(ms)`: wait, then forward.
//!
//! A rule matches by method and a substring of the request target (path and query), and fires on the
//! Nth match, on matches N..=M, on every match, or with a probability drawn from a seeded generator
//! (the same seed and request order give the same faults). The first rule that fires applies. Every
//! request is recorded (method, target, the fault applied) for assertions.
//!
//! Bounded: at most `MAX_CONNECTIONS` client connections at once (more wait in the accept queue), request
//! heads of at most 64 KiB, bodies of at most 256 MiB. Loopback only: it binds 127.0.0.1 and forwards to
//! 127.0.0.1. Dropping the proxy stops it and closes every connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MAX_CONNECTIONS: usize = 64;
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
pub enum Fault {
    DropAnswer,
    Reset,
    /// HTTP status and the S3 error code in the XML body (`SlowDown`, `InternalError`, ...).
    Status(u16, &'static str),
    /// Milliseconds to wait before forwarding.
    Stall(u64),
}

#[derive(Debug, Clone)]
pub enum When {
    /// Matches `from..=to` (1-based) among the requests this rule matches.
    Matches(u64, u64),
    /// Each match with this probability (from the proxy's seeded generator).
    Chance(f64),
}

#[derive(Debug, Clone)]
pub struct Rule {
    method: Option<String>,
    path: Option<String>,
    when: When,
    fault: Fault,
    seen: u64,
}

impl Rule {
    /// A rule that applies `fault` to every request; narrow it with the builder methods.
    pub fn new(fault: Fault) -> Rule {
        Rule {
            method: None,
            path: None,
            when: When::Matches(1, u64::MAX),
            fault,
            seen: 0,
        }
    }
    pub fn method(mut self, m: &str) -> Rule {
        self.method = Some(m.to_ascii_uppercase());
        self
    }
    /// Requests whose target (path and query) contains `s`.
    pub fn path(mut self, s: &str) -> Rule {
        self.path = Some(s.to_string());
        self
    }
    /// Only the `n`th matching request (1-based).
    pub fn nth(mut self, n: u64) -> Rule {
        self.when = When::Matches(n, n);
        self
    }
    /// Matching requests `from..=to` (1-based).
    pub fn matches(mut self, from: u64, to: u64) -> Rule {
        self.when = When::Matches(from, to);
        self
    }
    /// Each matching request with probability `p`.
    pub fn chance(mut self, p: f64) -> Rule {
        self.when = When::Chance(p);
        self
    }
}

/// One request the proxy saw, and the fault it applied (if any).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub fault: Option<String>,
    /// The upstream's status when it answered (None for faults that did not forward).
    pub status: Option<u16>,
    /// Bytes of the upstream's answer body (what a GET read from the server).
    pub body_bytes: usize,
}

struct Shared {
    rules: Mutex<(Vec<Rule>, u64)>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
    live: AtomicUsize,
    clients: Mutex<Vec<TcpStream>>,
    upstream: u16,
}

pub struct FaultProxy {
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy to 127.0.0.1:`upstream`; `seed` drives the probabilistic rules.
    pub fn start(upstream: u16, seed: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            rules: Mutex::new((Vec::new(), seed.max(1))),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            clients: Mutex::new(Vec::new()),
            upstream,
        });
        let sh = shared.clone();
        std::thread::spawn(move || accept_loop(listener, sh));
        FaultProxy {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            shared,
        }
    }

    pub fn add(&self, rule: Rule) {
        self.shared.rules.lock().unwrap().0.push(rule);
    }

    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().0.clear();
    }

    /// Every request so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many requests with `method` and a target containing `path` were seen.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.target.contains(path))
            .count()
    }

    /// How many requests had a fault applied.
    pub fn faults(&self) -> usize {
        self.seen().iter().filter(|s| s.fault.is_some()).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, then close every client connection.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for c in self.shared.clients.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, sh: Arc<Shared>) {
    for conn in listener.incoming() {
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        while sh.live.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(5));
        }
        sh.live.fetch_add(1, Ordering::SeqCst);
        if let Ok(c) = conn.try_clone() {
            let mut clients = sh.clients.lock().unwrap();
            clients.retain(|c| c.peer_addr().is_ok());
            clients.push(c);
        }
        let sh2 = sh.clone();
        std::thread::spawn(move || {
            let _ = serve(conn, &sh2);
            sh2.live.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// A parsed message head: the first line, the headers in order, and the raw body.
struct Message {
    first: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// A message's first line and its headers, in order.
type Head = (String, Vec<(String, String)>);

/// Reads a head; `None` at a clean end of the stream.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut total = first.len();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("the stream ended inside a head"));
        }
        total += line.len();
        if total > MAX_HEAD {
            return Err(bad("head too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad("a header without ':'"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Some((first.trim_end().to_string(), headers)))
}

/// Reads a chunked body and returns it de-chunked.
fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| bad("a bad chunk size"))?;
        if body.len() + size > MAX_BODY {
            return Err(bad("body too large"));
        }
        if size == 0 {
            // trailers, up to the empty line
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}

fn read_sized(r: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    if n > MAX_BODY {
        return Err(bad("body too large"));
    }
    let mut body = vec![0u8; n];
    r.read_exact(&mut body)?;
    Ok(body)
}

fn content_length(m: &Message) -> std::io::Result<Option<usize>> {
    match m.header("content-length") {
        Some(v) => v.parse().map(Some).map_err(|_| bad("a bad content-length")),
        None => Ok(None),
    }
}

fn is_chunked(m: &Message) -> bool {
    m.header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

fn write_message(w: &mut impl Write, m: &Message, body: bool) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(m.body.len() + 512);
    out.extend_from_slice(m.first.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in &m.headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if body {
        out.extend_from_slice(&m.body);
    }
    w.write_all(&out)?;
    w.flush()
}

/// Serves one client connection: requests one after another, each on a fresh upstream connection.
fn serve(client: TcpStream, sh: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client.try_clone()?;
    loop {
        let Some((first, headers)) = read_head(&mut reader)? else {
            return Ok(());
        };
        let mut req = Message {
            first,
            headers,
            body: Vec::new(),
        };
        let mut parts = req.first.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        if req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            req.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("expect"));
        }
        if is_chunked(&req) {
            req.body = read_chunked(&mut reader)?;
            req.headers.retain(|(k, _)| {
                !k.eq_ignore_ascii_case("transfer-encoding")
                    && !k.eq_ignore_ascii_case("content-length")
            });
            req.headers
                .push(("Content-Length".into(), req.body.len().to_string()));
        } else if let Some(n) = content_length(&req)? {
            req.body = read_sized(&mut reader, n)?;
        }
        let fault = decide(sh, &method, &target);
        // Recorded as it arrives (a stalled request is visible while it stalls); the status comes later.
        let index = record(
            sh,
            Seen {
                method: method.clone(),
                target: target.clone(),
                fault: fault.as_ref().map(|f| format!("{f:?}")),
                status: None,
                body_bytes: 0,
            },
        );
        match fault {
            Some(Fault::Reset) => {
                reset(&client);
                return Ok(());
            }
            Some(Fault::Status(code, s3_code)) => {
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{s3_code}</Code><Message>injected by the fault proxy</Message><RequestId>fault-proxy</RequestId></Error>"
                );
                let resp = Message {
                    first: format!("HTTP/1.1 {code} {s3_code}"),
                    headers: vec![
                        ("Content-Type".into(), "application/xml".into()),
                        ("Content-Length".into(), body.len().to_string()),
                    ],
                    body: body.into_bytes(),
                };
                write_message(&mut writer, &resp, true)?;
                continue;
            }
            Some(Fault::Stall(ms)) => std::thread::sleep(Duration::from_millis(ms)),
            Some(Fault::DropAnswer) | None => {}
        }
        if sh.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let resp = match forward(sh.upstream, &req, &method) {
            Ok(r) => r,
            Err(e) => {
                sh.seen.lock().unwrap()[index].fault = Some(format!("upstream failed: {e}"));
                reset(&client);
                return Ok(());
            }
        };
        {
            let mut seen = sh.seen.lock().unwrap();
            seen[index].status = resp
                .first
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok());
            seen[index].body_bytes = resp.body.len();
        }
        if matches!(fault, Some(Fault::DropAnswer)) {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        write_message(&mut writer, &resp, method != "HEAD")?;
    }
}

/// Records a request; returns its index in `seen`.
fn record(sh: &Shared, seen: Seen) -> usize {
    let mut all = sh.seen.lock().unwrap();
    all.push(seen);
    all.len() - 1
}

/// Closes with a TCP reset (SO_LINGER 0), as a crashed peer or a middlebox would.
fn reset(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = s.shutdown(Shutdown::Both);
}

/// Which fault (if any) applies to this request; advances the rules' counters.
fn decide(sh: &Shared, method: &str, target: &str) -> Option<Fault> {
    let mut guard = sh.rules.lock().unwrap();
    let (rules, rng) = &mut *guard;
    let mut chosen = None;
    for r in rules.iter_mut() {
        if r.method.as_deref().is_some_and(|m| m != method)
            || r.path.as_deref().is_some_and(|p| !target.contains(p))
        {
            continue;
        }
        r.seen += 1;
        let fires = match r.when {
            When::Matches(from, to) => (from..=to).contains(&r.seen),
            When::Chance(p) => next_f64(rng) < p,
        };
        if fires && chosen.is_none() {
            chosen = Some(r.fault.clone());
        }
    }
    chosen
}

/// splitmix64: a small seeded generator, enough for fault decisions.
fn next_f64(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Sends `req` on a new connection to the upstream and reads the whole answer (de-chunked, with a
/// Content-Length), so that it can be relayed on the client's keep-alive connection.
fn forward(upstream: u16, req: &Message, method: &str) -> std::io::Result<Message> {
    let up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut out = Message {
        first: req.first.clone(),
        headers: req
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("connection"))
            .cloned()
            .collect(),
        body: req.body.clone(),
    };
    out.headers.push(("Connection".into(), "close".into()));
    let mut w = up.try_clone()?;
    write_message(&mut w, &out, true)?;
    let mut r = BufReader::new(up);
    let (first, headers) = read_head(&mut r)?.ok_or_else(|| bad("no answer from the upstream"))?;
    let mut resp = Message {
        first,
        headers,
        body: Vec::new(),
    };
    let status: u16 = resp
        .first
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("a bad status line"))?;
    let no_body = method == "HEAD" || status == 204 || status == 304 || status < 200;
    if no_body {
        return Ok(resp);
    }
    if is_chunked(&resp) {
        resp.body = read_chunked(&mut r)?;
    } else if let Some(n) = content_length(&resp)? {
        resp.body = read_sized(&mut r, n)?;
    } else {
        r.take(MAX_BODY as u64).read_to_end(&mut resp.body)?;
    }
    resp.headers.retain(|(k, _)| {
        !k.eq_ignore_ascii_case("transfer-encoding")
            && !k.eq_ignore_ascii_case("content-length")
            && !k.eq_ignore_ascii_case("connection")
    });
    resp.headers
        .push(("Content-Length".into(), resp.body.len().to_string()));
    Ok(resp)
}
