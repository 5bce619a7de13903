//! Writing Azure blobs: object_store's buffered writer, one Put Blob when small, else blocks of
//! `part_size` with `concurrency` in flight, committed by Put Block List only when the writer commits.

use std::sync::Arc;

use futures::future::BoxFuture;
use object_store::buffered::BufWriter;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Map, Value as Json};
use tokio::io::AsyncWrite;

use super::{Cfg, az_error};
use crate::base::stream::{BoxSink, Sink};

/// A sink for `key`; nothing is visible until it commits.
pub(super) async fn writer(cfg: Arc<Cfg>, key: String) -> anyhow::Result<BoxSink> {
    let w = BufWriter::with_capacity(
        cfg.store.clone() as Arc<dyn ObjectStore>,
        cfg.path(&key),
        cfg.part_size,
    )
    .with_max_concurrency(cfg.concurrency);
    Ok(Box::new(AzureSink {
        inner: Some(w),
        cfg,
        key,
        bytes: 0,
        shut: false,
    }) as BoxSink)
}

struct AzureSink {
    inner: Option<BufWriter>,
    cfg: Arc<Cfg>,
    key: String,
    bytes: u64,
    /// Set once a commit was attempted: object_store's writer may not be aborted after that.
    shut: bool,
}

impl AsyncWrite for AzureSink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let Some(w) = this.inner.as_mut() else {
            return std::task::Poll::Ready(Err(std::io::Error::other("Azure writer closed")));
        };
        let n = std::task::ready!(std::pin::Pin::new(w).poll_write(cx, buf))?;
        this.bytes += n as u64;
        std::task::Poll::Ready(Ok(n))
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.inner.as_mut() {
            Some(w) => std::pin::Pin::new(w).poll_flush(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }
    /// Commits the blob (Put Blob or Put Block List). Only `stream::finish` calls it.
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.shut = true;
        match self.inner.as_mut() {
            Some(w) => std::pin::Pin::new(w).poll_shutdown(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }
}

impl Sink for AzureSink {
    fn finish(mut self: Box<Self>) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>> {
        Box::pin(async move {
            self.inner.take();
            let what = self.cfg.url(&self.key);
            let m = self
                .cfg
                .store
                .head(&self.cfg.path(&self.key))
                .await
                .map_err(|e| az_error("GetBlobProperties", &what, e))?;
            let mut o = Map::new();
            o.insert("key".into(), Json::String(self.key.clone()));
            o.insert("bytes".into(), Json::from(self.bytes));
            if let Some(e) = m.e_tag {
                o.insert("etag".into(), Json::String(e.trim_matches('"').to_string()));
            }
            Ok(o)
        })
    }
    fn abort(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(mut w) = self.inner.take()
                && !self.shut
            {
                let _ = w.abort().await;
            }
        })
    }
}
