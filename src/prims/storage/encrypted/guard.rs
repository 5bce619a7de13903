//! A store opened without keys: a clear error when it reads an age file.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::bail;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncRead, ReadBuf};

use super::super::{Backend, Leftovers, ObjectMeta, Range, Versioned};
use super::AGE_MAGIC;
use crate::base::stream::{BoxReader, BoxSink};

/// A store opened without keys: everything passes through, but reading an age file is an error
/// that says what to give.
pub struct PlainGuard {
    pub(super) inner: Arc<dyn Backend>,
}

pub(super) fn encrypted_msg(key: &str) -> String {
    format!("{key} is encrypted (age): give identity= or passphrase=")
}

impl Backend for PlainGuard {
    fn url(&self) -> String {
        self.inner.url()
    }
    fn writer(&self, key: &str) -> BoxFuture<'static, anyhow::Result<BoxSink>> {
        self.inner.writer(key)
    }
    fn reader(&self, key: &str, range: Range) -> BoxFuture<'static, anyhow::Result<BoxReader>> {
        let fut = self.inner.reader(key, range);
        let key = key.to_string();
        Box::pin(async move {
            let r = fut.await?;
            if range.offset != 0 {
                return Ok(r);
            }
            Ok(Box::pin(Sniff {
                inner: r,
                seen: Vec::new(),
                key,
            }) as BoxReader)
        })
    }
    fn list(&self, prefix: &str) -> BoxStream<'static, anyhow::Result<Vec<ObjectMeta>>> {
        self.inner.list(prefix)
    }
    fn head(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<ObjectMeta>>> {
        self.inner.head(key)
    }
    fn delete(&self, keys: Vec<String>) -> BoxFuture<'static, anyhow::Result<usize>> {
        self.inner.delete(keys)
    }
    fn copy(&self, from: &str, to: &str) -> BoxFuture<'static, anyhow::Result<()>> {
        self.inner.copy(from, to)
    }
    fn get_versioned(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<Versioned>>> {
        let fut = self.inner.get_versioned(key);
        let key = key.to_string();
        Box::pin(async move {
            let v = fut.await?;
            if let Some(v) = &v
                && v.body.starts_with(AGE_MAGIC)
            {
                bail!(encrypted_msg(&key));
            }
            Ok(v)
        })
    }
    fn create_if_absent(
        &self,
        key: &str,
        data: bytes::Bytes,
    ) -> BoxFuture<'static, anyhow::Result<Option<String>>> {
        self.inner.create_if_absent(key, data)
    }
    fn replace_if(
        &self,
        key: &str,
        data: bytes::Bytes,
        version: &str,
    ) -> BoxFuture<'static, anyhow::Result<Option<String>>> {
        self.inner.replace_if(key, data, version)
    }
    fn delete_if(&self, key: &str, version: &str) -> BoxFuture<'static, anyhow::Result<bool>> {
        self.inner.delete_if(key, version)
    }
    fn leftovers(
        &self,
        prefix: &str,
        older_than: std::time::Duration,
        remove: bool,
    ) -> BoxFuture<'static, anyhow::Result<Leftovers>> {
        self.inner.leftovers(prefix, older_than, remove)
    }
    fn put(
        &self,
        key: &str,
        reader: BoxReader,
    ) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>> {
        self.inner.put(key, reader)
    }
}

/// Watches the first bytes of an object for the age header.
pub(super) struct Sniff {
    pub(super) inner: BoxReader,
    pub(super) seen: Vec<u8>,
    pub(super) key: String,
}

impl AsyncRead for Sniff {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        std::task::ready!(self.inner.as_mut().poll_read(cx, buf))?;
        if self.seen.len() < AGE_MAGIC.len() {
            let new = &buf.filled()[before..];
            let take = new.len().min(AGE_MAGIC.len() - self.seen.len());
            let new = new[..take].to_vec();
            self.seen.extend_from_slice(&new);
            if !AGE_MAGIC.starts_with(&self.seen) {
                self.seen = AGE_MAGIC.to_vec(); // not age: stop looking
                self.seen.push(0);
            } else if self.seen.len() == AGE_MAGIC.len() {
                buf.set_filled(before);
                return Poll::Ready(Err(std::io::Error::other(encrypted_msg(&self.key))));
            }
        }
        Poll::Ready(Ok(()))
    }
}
