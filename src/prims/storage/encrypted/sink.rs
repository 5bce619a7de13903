//! Writing: age encryption in front of another sink.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use anyhow::{Context as _, anyhow};
use futures::future::BoxFuture;
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::CHUNK;
use crate::base::stream::{BoxSink, Sink};

/// A `Write` into a buffer the sink drains.
#[derive(Clone, Default)]
pub(super) struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// age encryption in front of another sink: each write is encrypted into `buf` (at most one 64 KiB
/// chunk plus what is being written at a time), which is drained into the inner sink before the next.
pub(super) struct EncryptingSink {
    pub(super) stream: Option<age::stream::StreamWriter<SharedBuf>>,
    pub(super) buf: SharedBuf,
    /// How much of `buf` has gone to the inner sink.
    pub(super) sent: usize,
    /// Plaintext bytes written.
    pub(super) plain: u64,
    pub(super) inner: Option<BoxSink>,
}

impl EncryptingSink {
    /// Drains `buf` into the inner sink.
    pub(super) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| std::io::Error::other("encrypted writer already finished"))?;
        loop {
            let mut b = self.buf.0.lock().unwrap_or_else(|e| e.into_inner());
            if self.sent >= b.len() {
                b.clear();
                self.sent = 0;
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut *inner).poll_write(cx, &b[self.sent..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => self.sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for EncryptingSink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        let stream = this
            .stream
            .as_mut()
            .ok_or_else(|| std::io::Error::other("encrypted writer already finished"))?;
        let n = data.len().min(CHUNK as usize);
        stream.write_all(&data[..n])?;
        this.plain += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        match this.inner.as_mut() {
            Some(i) => Pin::new(i).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // finish() ends the age stream; shutdown only flushes what is pending.
        self.poll_flush(cx)
    }
}

impl Sink for EncryptingSink {
    fn finish(mut self: Box<Self>) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>> {
        Box::pin(async move {
            if let Some(stream) = self.stream.take() {
                stream.finish().context("finishing the age stream")?;
            }
            futures::future::poll_fn(|cx| self.poll_drain(cx)).await?;
            let mut inner = self
                .inner
                .take()
                .ok_or_else(|| anyhow!("encrypted writer already finished"))?;
            inner.flush().await?;
            // `bytes`: what was written (the plaintext); `stored_bytes`: the age file's size.
            let mut info = inner.finish().await?;
            let stored = info.remove("bytes");
            info.insert("bytes".into(), Json::from(self.plain));
            if let Some(s) = stored {
                info.insert("stored_bytes".into(), s);
            }
            Ok(info)
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.stream.take();
            if let Some(inner) = self.inner.take() {
                inner.abort().await;
            }
        })
    }
}
