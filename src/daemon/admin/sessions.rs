//! Login sessions (in memory: a restarted daemon asks everyone to log in again) and the per-address
//! limit on failed logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::users::Role;

/// How long sessions live and how many failed logins an address gets.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after its login, used or not.
    pub absolute: Duration,
    /// Failed logins allowed per address within `failure_window`.
    pub max_failures: usize,
    pub failure_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            max_failures: 5,
            failure_window: Duration::from_secs(5 * 60),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// Sent back in every form; a state-changing request without it is refused.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    /// A new session, with its own CSRF token.
    fn new(user: &str, role: Role) -> Session {
        let now = Instant::now();
        Session {
            user: user.into(),
            role,
            csrf: random_token(),
            created: now,
            last_seen: now,
        }
    }

    pub fn csrf_ok(&self, given: &str) -> bool {
        !given.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(given.as_bytes()))
    }
}

#[derive(Default)]
struct Inner {
    /// By session id (the cookie's value).
    sessions: HashMap<String, Session>,
    /// Times of recent failed logins, by address.
    failures: HashMap<IpAddr, Vec<Instant>>,
}

pub struct Sessions {
    pub limits: Limits,
    inner: Mutex<Inner>,
}

/// Whether a cookie's value has the form of a session id. Proxy users' sessions are kept under
/// `proxy:NAME`, which this refuses, so a cookie cannot name one.
pub fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// 32 random bytes, hex: a session id or a token nobody can guess.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    pub fn new(limits: Limits) -> Sessions {
        Sessions {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session; returns its id.
    pub fn start(&self, user: &str, role: Role) -> String {
        let id = random_token();
        let s = Session::new(user, role);
        let mut inner = self.lock();
        let (now, limits) = (s.created, &self.limits);
        inner.sessions.retain(|_, s| alive(s, now, limits));
        inner.sessions.insert(id.clone(), s);
        id
    }

    /// The live session with this id, touched; an expired one is removed.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut inner = self.lock();
        let s = inner.sessions.get_mut(id)?;
        if !alive(s, now, &self.limits) {
            inner.sessions.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn end(&self, id: &str) {
        self.lock().sessions.remove(id);
    }

    /// A standing session for a user a trusted proxy vouches for (one per user, so their CSRF token
    /// stays the same from page to page).
    pub fn for_proxy_user(&self, user: &str, role: Role) -> Session {
        let key = format!("proxy:{user}");
        if let Some(s) = self.get(&key)
            && s.role == role
        {
            return s;
        }
        let s = Session::new(user, role);
        self.lock().sessions.insert(key, s.clone());
        s
    }

    /// Whether `ip` may try to log in now; `Err(seconds)` until it may.
    pub fn may_try(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut inner = self.lock();
        let window = self.limits.failure_window;
        let list = inner.failures.entry(ip).or_default();
        list.retain(|t| now.duration_since(*t) < window);
        if list.len() >= self.limits.max_failures {
            let oldest = list[0];
            return Err((window - now.duration_since(oldest)).as_secs().max(1));
        }
        Ok(())
    }

    pub fn failed(&self, ip: IpAddr) {
        self.lock()
            .failures
            .entry(ip)
            .or_default()
            .push(Instant::now());
    }
}

fn alive(s: &Session, now: Instant, limits: &Limits) -> bool {
    now.duration_since(s.last_seen) < limits.idle && now.duration_since(s.created) < limits.absolute
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_or_old() {
        let s = Sessions::new(Limits {
            idle: Duration::from_millis(200),
            absolute: Duration::from_millis(500),
            ..Limits::default()
        });
        let id = s.start("alice", Role::Operator);
        assert_eq!(s.get(&id).unwrap().user, "alice");
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(120));
            assert!(s.get(&id).is_some(), "used within the idle time");
        }
        std::thread::sleep(Duration::from_millis(150));
        assert!(s.get(&id).is_none(), "past the absolute limit");
        let id = s.start("alice", Role::Operator);
        std::thread::sleep(Duration::from_millis(250));
        assert!(s.get(&id).is_none(), "idle too long");
        assert!(s.get("no such id").is_none());
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let s = Sessions::new(Limits {
            max_failures: 2,
            ..Limits::default()
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(s.may_try(a).is_ok());
        s.failed(a);
        s.failed(a);
        assert!(s.may_try(a).is_err());
        assert!(s.may_try(b).is_ok());
    }

    #[test]
    fn csrf_must_match() {
        let s = Sessions::new(Limits::default());
        let sess = s.get(&s.start("a", Role::Viewer)).unwrap();
        assert!(sess.csrf_ok(&sess.csrf.clone()));
        assert!(!sess.csrf_ok(""));
        assert!(!sess.csrf_ok("0000"));
    }
}
