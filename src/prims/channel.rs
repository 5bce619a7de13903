//! `task.channel(capacity)`: a bounded queue between the coroutines of one run (many senders, many
//! receivers). `send` waits while the queue is full, so a fast producer cannot outgrow memory; `recv`
//! waits for an item and returns nil once the channel is closed and empty, which is how a worker learns
//! that its stage is done. Everything runs on the run's one thread, so plain `Rc`/`RefCell` suffice.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use mlua::{Lua, RegistryKey, UserData, UserDataMethods, Value};
use tokio::sync::Notify;

pub struct Channel {
    inner: Rc<Inner>,
}

struct Inner {
    queue: RefCell<VecDeque<RegistryKey>>,
    capacity: usize,
    closed: Cell<bool>,
    readable: Notify,
    writable: Notify,
}

impl Channel {
    pub fn new(capacity: usize) -> Channel {
        Channel {
            inner: Rc::new(Inner {
                queue: RefCell::new(VecDeque::new()),
                capacity: capacity.max(1),
                closed: Cell::new(false),
                readable: Notify::new(),
                writable: Notify::new(),
            }),
        }
    }
}

impl Inner {
    async fn send(&self, lua: &Lua, v: Value) -> mlua::Result<()> {
        loop {
            if self.closed.get() {
                return Err(mlua::Error::runtime("send on a closed channel"));
            }
            if self.queue.borrow().len() < self.capacity {
                let key = lua.create_registry_value(v)?;
                self.queue.borrow_mut().push_back(key);
                self.readable.notify_one();
                return Ok(());
            }
            self.writable.notified().await;
        }
    }

    /// The next item; `None` when closed and empty.
    async fn recv(&self, lua: &Lua) -> mlua::Result<Option<Value>> {
        loop {
            if let Some(v) = self.pop(lua)? {
                // Another receiver may be waiting for the items behind this one.
                if !self.queue.borrow().is_empty() {
                    self.readable.notify_one();
                }
                return Ok(Some(v));
            }
            if self.closed.get() {
                return Ok(None);
            }
            self.readable.notified().await;
        }
    }

    fn pop(&self, lua: &Lua) -> mlua::Result<Option<Value>> {
        let next = self.queue.borrow_mut().pop_front();
        let Some(key) = next else { return Ok(None) };
        self.writable.notify_one();
        let v: Value = lua.registry_value(&key)?;
        lua.remove_registry_value(key)?;
        Ok(Some(v))
    }

    fn close(&self) {
        self.closed.set(true);
        self.readable.notify_waiters();
        self.writable.notify_waiters();
    }
}

impl UserData for Channel {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // send(v): waits while full; raises on a closed channel.
        m.add_async_method("send", |lua, this, v: Value| {
            let inner = this.inner.clone();
            async move { inner.send(&lua, v).await }
        });
        // recv([timeout]) → item | nil, why ("closed" | "timeout")
        m.add_async_method("recv", |lua, this, timeout: Option<f64>| {
            let inner = this.inner.clone();
            async move {
                let got = match timeout {
                    None => inner.recv(&lua).await?,
                    Some(secs) => {
                        let wait = Duration::from_secs_f64(secs.max(0.0));
                        match tokio::time::timeout(wait, inner.recv(&lua)).await {
                            Ok(got) => got?,
                            Err(_) => return Ok((Value::Nil, Some("timeout"))),
                        }
                    }
                };
                Ok(match got {
                    Some(v) => (v, None),
                    None => (Value::Nil, Some("closed")),
                })
            }
        });
        // try_recv() → item | nil: never waits.
        m.add_method("try_recv", |lua, this, ()| {
            Ok(this.inner.pop(lua)?.unwrap_or(Value::Nil))
        });
        m.add_method("close", |_, this, ()| {
            this.inner.close();
            Ok(())
        });
        m.add_method("closed", |_, this, ()| Ok(this.inner.closed.get()));
        m.add_method("len", |_, this, ()| Ok(this.inner.queue.borrow().len()));
        m.add_method("capacity", |_, this, ()| Ok(this.inner.capacity));
    }
}
