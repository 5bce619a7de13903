//! Writing S3 objects: the `S3Sink` a store's `writer` returns, which feeds a background task that
//! sends one PutObject (objects under one part) or a multipart upload (`concurrency` parts in flight,
//! aborted on any failure, completed only when the writer commits). The multipart calls are shared with
//! the multipart copy. Conditional writes are in `conditional`.

use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream};
use tokio::sync::oneshot;

use super::{Cfg, s3_error};
use crate::base::stream::{BoxSink, Sink};

/// A sink for `key`: bytes go through a pipe to the upload task, started here.
pub(super) async fn writer(cfg: Arc<Cfg>, key: String) -> anyhow::Result<BoxSink> {
    let (w, r) = tokio::io::duplex(256 * 1024);
    let (tx, rx) = oneshot::channel();
    let failed = Arc::new(Mutex::new(None));
    let failed2 = failed.clone();
    // In the caller's span: retries logged by the upload belong to the run that started it.
    let task = tokio::spawn(tracing::Instrument::in_current_span(async move {
        let res = upload(cfg, key, r, rx).await;
        if let Err(e) = &res {
            *failed2.lock().unwrap() = Some(format!("{e:#}"));
        }
        res
    }));
    Ok(Box::new(S3Sink {
        pipe: Some(w),
        decision: Some(tx),
        task: Some(task),
        failed,
    }) as BoxSink)
}

/// Reads until `buf` holds `n` bytes or the input ends.
async fn read_chunk(r: &mut (impl AsyncRead + Unpin), n: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(n);
    while buf.len() < n {
        let got = r.read_buf(&mut buf).await?;
        if got == 0 {
            break;
        }
        if buf.capacity() == buf.len() && buf.len() < n {
            buf.reserve(n - buf.len());
        }
    }
    Ok(buf.freeze())
}

enum Decision {
    Commit,
}

/// Uploads what arrives on `input`; completes only after `decision` says Commit.
async fn upload(
    cfg: Arc<Cfg>,
    key: String,
    mut input: DuplexStream,
    decision: oneshot::Receiver<Decision>,
) -> anyhow::Result<Map<String, Json>> {
    let full = cfg.full(&key);
    let what = cfg.url(&key);
    let first = read_chunk(&mut input, cfg.part_size)
        .await
        .with_context(|| format!("reading the data for {what}"))?;
    if first.len() < cfg.part_size {
        // Small object: one PutObject, once the writer commits.
        decision
            .await
            .map_err(|_| anyhow!("upload of {what} was aborted"))?;
        let size = first.len() as u64;
        let mut req = cfg
            .client
            .put_object()
            .bucket(&cfg.bucket)
            .key(&full)
            .body(ByteStream::from(first));
        if let Some(s) = &cfg.sse {
            req = req.server_side_encryption(s.as_str().into());
        }
        if let Some(k) = &cfg.kms_key_id {
            req = req.ssekms_key_id(k);
        }
        let out = req
            .send()
            .await
            .map_err(|e| s3_error("PutObject", &what, e))?;
        return Ok(report(&key, size, out.e_tag()));
    }
    let create = cfg
        .client
        .create_multipart_upload()
        .bucket(&cfg.bucket)
        .key(&full);
    let upload_id = create_multipart(&cfg, create, &what).await?;
    let res = upload_parts(&cfg, &full, &what, &upload_id, first, &mut input, decision).await;
    match res {
        Ok((size, etag)) => Ok(report(&key, size, etag.as_deref())),
        Err(e) => {
            abort_multipart(&cfg, &full, &upload_id).await;
            Err(e)
        }
    }
}

/// Starts a multipart upload (with the store's server-side encryption) and returns its id.
pub(super) async fn create_multipart(
    cfg: &Cfg,
    mut req: CreateMultipartUploadFluentBuilder,
    what: &str,
) -> anyhow::Result<String> {
    if let Some(s) = &cfg.sse {
        req = req.server_side_encryption(s.as_str().into());
    }
    if let Some(k) = &cfg.kms_key_id {
        req = req.ssekms_key_id(k);
    }
    let created = req
        .send()
        .await
        .map_err(|e| s3_error("CreateMultipartUpload", what, e))?;
    Ok(created
        .upload_id()
        .context("CreateMultipartUpload returned no upload id")?
        .to_string())
}

/// Completes a multipart upload from its parts (in any order); returns the object's ETag.
pub(super) async fn complete_multipart(
    cfg: &Cfg,
    full: &str,
    upload_id: &str,
    mut parts: Vec<CompletedPart>,
    what: &str,
) -> anyhow::Result<Option<String>> {
    parts.sort_by_key(|p| p.part_number());
    let out = cfg
        .client
        .complete_multipart_upload()
        .bucket(&cfg.bucket)
        .key(full)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| s3_error("CompleteMultipartUpload", what, e))?;
    Ok(out.e_tag().map(str::to_string))
}

/// Aborts a multipart upload so that no part lingers and nothing becomes visible. Its own errors are
/// secondary to the one that caused it, so they are dropped.
pub(super) async fn abort_multipart(cfg: &Cfg, full: &str, upload_id: &str) {
    let _ = cfg
        .client
        .abort_multipart_upload()
        .bucket(&cfg.bucket)
        .key(full)
        .upload_id(upload_id)
        .send()
        .await;
}

async fn upload_parts(
    cfg: &Arc<Cfg>,
    full: &str,
    what: &str,
    upload_id: &str,
    first: Bytes,
    input: &mut DuplexStream,
    decision: oneshot::Receiver<Decision>,
) -> anyhow::Result<(u64, Option<String>)> {
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut parts: Vec<CompletedPart> = Vec::new();
    let mut size = 0u64;
    let mut chunk = first;
    let mut number: i32 = 1;
    let mut decision = Some(decision);
    loop {
        let last = chunk.len() < cfg.part_size;
        if last {
            // The input ended: wait for the writer to commit before sending the last part.
            decision
                .take()
                .expect("one decision")
                .await
                .map_err(|_| anyhow!("upload of {what} was aborted"))?;
        }
        if !chunk.is_empty() {
            // Collect finished parts, surfacing the first error at once.
            while let Some(done) = tasks.try_join_next() {
                parts.push(done??);
            }
            let permit = sem.clone().acquire_owned().await?;
            size += chunk.len() as u64;
            let (cfg2, full2, id2, what2) = (
                cfg.clone(),
                full.to_string(),
                upload_id.to_string(),
                what.to_string(),
            );
            let body = chunk;
            let n = number;
            tasks.spawn(async move {
                let _permit = permit;
                let out = cfg2
                    .client
                    .upload_part()
                    .bucket(&cfg2.bucket)
                    .key(&full2)
                    .upload_id(&id2)
                    .part_number(n)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(|e| s3_error("UploadPart", &format!("{what2} part {n}"), e))?;
                anyhow::Ok(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                        .set_checksum_crc32_c(out.checksum_crc32_c().map(str::to_string))
                        .set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_string))
                        .set_checksum_sha1(out.checksum_sha1().map(str::to_string))
                        .set_checksum_sha256(out.checksum_sha256().map(str::to_string))
                        .build(),
                )
            });
            number += 1;
        }
        if last {
            break;
        }
        // Wait for a free slot before reading the next part, so memory stays bounded.
        let permit = sem.clone().acquire_owned().await?;
        drop(permit);
        chunk = read_chunk(input, cfg.part_size)
            .await
            .with_context(|| format!("reading the data for {what}"))?;
    }
    while let Some(done) = tasks.join_next().await {
        parts.push(done??);
    }
    let etag = complete_multipart(cfg, full, upload_id, parts, what).await?;
    Ok((size, etag))
}

fn report(key: &str, size: u64, etag: Option<&str>) -> Map<String, Json> {
    let mut o = Map::new();
    o.insert("key".into(), Json::String(key.to_string()));
    o.insert("bytes".into(), Json::from(size));
    if let Some(e) = etag {
        o.insert("etag".into(), Json::String(e.trim_matches('"').to_string()));
    }
    o
}

/// The writer side of an upload: bytes go through a pipe to the background upload task.
struct S3Sink {
    pipe: Option<DuplexStream>,
    decision: Option<oneshot::Sender<Decision>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<Map<String, Json>>>>,
    /// The upload task's error, shown instead of "broken pipe" when it stops reading.
    failed: Arc<Mutex<Option<String>>>,
}

impl S3Sink {
    fn map_err(&self, e: std::io::Error) -> std::io::Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe
            && let Some(msg) = self.failed.lock().unwrap().clone()
        {
            return std::io::Error::other(msg);
        }
        e
    }
}

impl AsyncWrite for S3Sink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let Some(pipe) = self.pipe.as_mut() else {
            return std::task::Poll::Ready(Err(std::io::Error::other("S3 writer closed")));
        };
        match std::pin::Pin::new(pipe).poll_write(cx, buf) {
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(self.map_err(e))),
            other => other,
        }
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.pipe.as_mut() {
            Some(p) => std::pin::Pin::new(p).poll_flush(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.pipe.as_mut() {
            Some(p) => {
                let r = std::pin::Pin::new(p).poll_shutdown(cx);
                if r.is_ready() {
                    self.pipe = None;
                }
                r
            }
            None => std::task::Poll::Ready(Ok(())),
        }
    }
}

impl Sink for S3Sink {
    fn finish(mut self: Box<Self>) -> BoxFuture<'static, anyhow::Result<Map<String, Json>>> {
        Box::pin(async move {
            self.pipe.take();
            if let Some(d) = self.decision.take() {
                let _ = d.send(Decision::Commit);
            }
            let task = self.task.take().context("S3 writer already finished")?;
            task.await?
        })
    }
    fn abort(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.pipe.take();
            self.decision.take();
            if let Some(t) = self.task.take() {
                let _ = t.await;
            }
        })
    }
}

impl Drop for S3Sink {
    fn drop(&mut self) {
        // Dropping the decision sender makes the task abort the upload on its own; the process waits for
        // that abort before it exits.
        self.decision.take();
        if let Some(task) = self.task.take() {
            crate::base::stream::track_cleanup(async move {
                let _ = task.await;
            });
        }
    }
}
