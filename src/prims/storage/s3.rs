//! The S3 backend: `s3://bucket/prefix`, with aws-sdk-s3 and the standard AWS credential chain.
//!
//! - Uploads: objects smaller than one part go up in a single PutObject; larger ones as a multipart
//!   upload whose parts (default 8 MiB) are uploaded `concurrency` (default 4) at a time. At most
//!   `concurrency + 1` parts are in memory (4 in flight + 1 filling = 40 MiB by default). A failed,
//!   aborted or dropped upload is aborted with AbortMultipartUpload: no object becomes visible.
//! - Downloads: a single streamed GetObject for small objects or ranges, else ranged GETs of one part
//!   size each, `concurrency` in flight, reassembled in order (pinned to the ETag seen by HEAD).
//! - Listing: ListObjectsV2, one page (1000 keys) fetched at a time as the caller consumes them.
//! - Copy: server-side. Sources up to `copy_threshold` (default 256 MiB, at most S3's 5 GiB CopyObject
//!   limit) with one CopyObject; larger ones as a multipart copy (UploadPartCopy of `copy_part_size`
//!   ranges, default 64 MiB, `concurrency` at a time), aborted on any failure.
//! - Retries: the SDK's standard retry mode (exponential backoff with jitter, 5 attempts) for 5xx,
//!   throttling and I/O errors; everything else (403, 404, NoSuchBucket) fails at once with a message
//!   naming the bucket and key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream};
use tokio::sync::oneshot;

use super::{Backend, ObjectMeta, OpenOpts, Range, opt_bool, opt_str, opt_u64};
use crate::base::errors::UsageError;
use crate::base::retry::{Policy, Retryable};
use crate::base::stream::{BoxReader, BoxSink, Sink};

/// S3's minimum part size (except the last part).
const MIN_PART: u64 = 5 * 1024 * 1024;
const DEFAULT_PART: u64 = 8 * 1024 * 1024;
const DEFAULT_CONCURRENCY: usize = 4;
/// DeleteObjects takes at most 1000 keys per call.
const DELETE_BATCH: usize = 1000;
/// CopyObject refuses sources above 5 GiB; UploadPartCopy parts are at most 5 GiB too.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// A multipart upload has at most 10,000 parts.
const MAX_PARTS: u64 = 10_000;
const DEFAULT_COPY_THRESHOLD: u64 = 256 * 1024 * 1024;
const DEFAULT_COPY_PART: u64 = 64 * 1024 * 1024;
/// A ranged GET whose body breaks off is sent again up to 3 times, after 200, 400 and 600 ms.
const BODY_BACKOFF: Policy = Policy::linear(Duration::from_millis(200), 3);
/// A conditional PutObject that meets a concurrent one (409) is sent again up to 5 times, after 100,
/// 200, 300, 400 and 500 ms.
const CONDITIONAL_WRITE_BACKOFF: Policy = Policy::linear(Duration::from_millis(100), 5);

struct Cfg {
    client: Client,
    bucket: String,
    prefix: String,
    part_size: usize,
    concurrency: usize,
    sse: Option<String>,
    kms_key_id: Option<String>,
    /// `copy` of a larger source is a multipart copy (UploadPartCopy) of `copy_part_size` parts.
    copy_threshold: u64,
    copy_part_size: u64,
    /// Set once HeadBucket succeeded.
    bucket_ok: std::sync::atomic::AtomicBool,
}

pub struct S3Backend {
    cfg: Arc<Cfg>,
}

impl Cfg {
    fn full(&self, key: &str) -> String {
        super::join(&self.prefix, key)
    }
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full(key))
    }
    fn rel(&self, full: &str) -> String {
        let p = self.prefix.trim_matches('/');
        if p.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(p)
                .map(|s| s.trim_start_matches('/'))
                .unwrap_or(full)
                .to_string()
        }
    }
}

/// An SDK error as a message naming the operation, bucket and key (never credentials).
fn s3_error<E>(
    op: &str,
    what: &str,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(ctx) => {
            let err = ctx.err();
            let Some(code) = err.code() else {
                let status = ctx.raw().status().as_u16();
                return anyhow!("S3 {op} {what}: HTTP {status}: {}", DisplayErrorContext(&e));
            };
            let msg = err.message().unwrap_or("");
            let hint = match code {
                _ if !msg.is_empty() && code == "NoSuchBucket" => "",
                "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                    " (check the credentials and the bucket policy)"
                }
                "NoSuchBucket" => " (the bucket does not exist)",
                _ => "",
            };
            anyhow!("S3 {op} {what}: {code}: {msg}{hint}")
        }
        _ => anyhow!("S3 {op} {what}: {}", DisplayErrorContext(&e)),
    }
}

fn status_of<E, R: HasStatus>(e: &SdkError<E, R>) -> Option<u16> {
    match e {
        SdkError::ServiceError(ctx) => Some(ctx.raw().status_code()),
        SdkError::ResponseError(ctx) => Some(ctx.raw().status_code()),
        _ => None,
    }
}

trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl S3Backend {
    pub async fn open(rest: &str, opts: &OpenOpts) -> anyhow::Result<S3Backend> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!(UsageError(format!(
                "store URL 's3://{rest}' names no bucket"
            )));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            super::check_key(&prefix)?;
        }
        let part_size = opt_u64(opts, "part_size").unwrap_or(DEFAULT_PART);
        if part_size < MIN_PART {
            bail!(UsageError(format!(
                "part_size {part_size} is below S3's minimum of {MIN_PART} bytes"
            )));
        }
        let copy_threshold = opt_u64(opts, "copy_threshold").unwrap_or(DEFAULT_COPY_THRESHOLD);
        if copy_threshold > MAX_COPY {
            bail!(UsageError(format!(
                "copy_threshold {copy_threshold} is above S3's CopyObject limit of {MAX_COPY} bytes"
            )));
        }
        let copy_part_size = opt_u64(opts, "copy_part_size").unwrap_or(DEFAULT_COPY_PART);
        if !(MIN_PART..=MAX_COPY).contains(&copy_part_size) {
            bail!(UsageError(format!(
                "copy_part_size {copy_part_size} is not between S3's part limits of {MIN_PART} and {MAX_COPY} bytes"
            )));
        }
        let concurrency = opt_u64(opts, "concurrency")
            .map(|c| c.clamp(1, 64) as usize)
            .unwrap_or(DEFAULT_CONCURRENCY);
        let sse = opt_str(opts, "sse");
        if let Some(s) = &sse
            && s != "AES256"
            && s != "aws:kms"
        {
            bail!(UsageError(format!(
                "sse '{s}' is not one of AES256, aws:kms"
            )));
        }
        let kms_key_id = opt_str(opts, "kms_key_id");

        let endpoint = opt_str(opts, "endpoint");
        let env_set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
        let custom_endpoint =
            endpoint.is_some() || env_set("AWS_ENDPOINT_URL") || env_set("AWS_ENDPOINT_URL_S3");
        let mut region = opt_str(opts, "region");
        if region.is_none()
            && custom_endpoint
            && !env_set("AWS_REGION")
            && !env_set("AWS_DEFAULT_REGION")
        {
            // S3-compatible servers ignore the region; skip the instance-metadata lookup.
            region = Some("us-east-1".into());
        }
        let region_chain = aws_config::meta::region::RegionProviderChain::first_try(
            region.map(aws_config::Region::new),
        )
        .or_default_provider()
        .or_else(aws_config::Region::new("us-east-1"));
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(region_chain)
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(5)
                    .with_initial_backoff(std::time::Duration::from_millis(200)),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .build(),
            );
        if let Some(p) = opt_str(opts, "profile") {
            loader = loader.profile_name(p);
        }
        if let (Some(ak), Some(sk)) = (
            opt_str(opts, "access_key_id"),
            opt_str(opts, "secret_access_key"),
        ) {
            crate::base::redact::register(&sk);
            let token = opt_str(opts, "session_token");
            if let Some(t) = &token {
                crate::base::redact::register(t);
            }
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                ak,
                sk,
                token,
                None,
                "rewind-store-opts",
            ));
        }
        if let Some(e) = &endpoint {
            loader = loader.endpoint_url(e);
        }
        let sdk = loader.load().await;
        let path_style = opt_bool(opts, "path_style").unwrap_or(custom_endpoint);
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .build();
        Ok(S3Backend {
            cfg: Arc::new(Cfg {
                client: Client::from_conf(conf),
                bucket: bucket.to_string(),
                prefix,
                part_size: part_size as usize,
                concurrency,
                sse,
                kms_key_id,
                copy_threshold,
                copy_part_size,
                bucket_ok: false.into(),
            }),
        })
    }
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
async fn create_multipart(
    cfg: &Cfg,
    mut req: aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder,
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
async fn complete_multipart(
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
async fn abort_multipart(cfg: &Cfg, full: &str, upload_id: &str) {
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

fn not_found(what: &str) -> anyhow::Error {
    anyhow!("no object {what} (not found)")
}

impl Backend for S3Backend {
    fn url(&self) -> String {
        let p = self.cfg.prefix.trim_matches('/');
        if p.is_empty() {
            format!("s3://{}", self.cfg.bucket)
        } else {
            format!("s3://{}/{}", self.cfg.bucket, p)
        }
    }

    fn writer(&self, key: &str) -> BoxFuture<'static, anyhow::Result<BoxSink>> {
        let cfg = self.cfg.clone();
        let key = key.to_string();
        Box::pin(async move {
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
        })
    }

    fn reader(&self, key: &str, range: Range) -> BoxFuture<'static, anyhow::Result<BoxReader>> {
        let cfg = self.cfg.clone();
        let key = key.to_string();
        Box::pin(async move {
            let what = cfg.url(&key);
            let full = cfg.full(&key);
            let head = head_object(&cfg, &key)
                .await?
                .ok_or_else(|| not_found(&what))?;
            let start = range.offset.min(head.size);
            let end = match range.length {
                Some(l) => start.saturating_add(l).min(head.size),
                None => head.size,
            };
            if start >= end {
                return Ok(Box::pin(tokio::io::empty()) as BoxReader);
            }
            let part = cfg.part_size as u64;
            let etag = head.etag.clone();
            if end - start <= part || cfg.concurrency == 1 {
                let mut req = cfg.client.get_object().bucket(&cfg.bucket).key(&full);
                if start > 0 || end < head.size {
                    req = req.range(format!("bytes={}-{}", start, end - 1));
                }
                if let Some(e) = &etag {
                    req = req.if_match(format!("\"{e}\""));
                }
                let out = req
                    .send()
                    .await
                    .map_err(|e| s3_error("GetObject", &what, e))?;
                return Ok(Box::pin(out.body.into_async_read()) as BoxReader);
            }
            // Parallel ranged GETs, reassembled in order; `buffered` bounds what is in memory.
            let ranges: Vec<(u64, u64)> = (start..end)
                .step_by(part as usize)
                .map(|s| (s, (s + part).min(end)))
                .collect();
            let conc = cfg.concurrency;
            let stream = futures::stream::iter(ranges)
                .map(move |(s, e)| {
                    let cfg = cfg.clone();
                    let full = full.clone();
                    let what = what.clone();
                    let etag = etag.clone();
                    async move { get_range(&cfg, &full, &what, etag.as_deref(), s, e).await }
                })
                .buffered(conc)
                .map_err(|e| std::io::Error::other(format!("{e:#}")));
            Ok(Box::pin(tokio_util::io::StreamReader::new(stream)) as BoxReader)
        })
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, anyhow::Result<Vec<ObjectMeta>>> {
        let cfg = self.cfg.clone();
        let full_prefix = {
            let p = cfg.prefix.trim_matches('/');
            if p.is_empty() {
                prefix.to_string()
            } else {
                format!("{p}/{prefix}")
            }
        };
        // State: None = finished; Some(token) = fetch the next page (first page: Some(None)).
        Box::pin(futures::stream::unfold(
            Some(None::<String>),
            move |state| {
                let cfg = cfg.clone();
                let full_prefix = full_prefix.clone();
                async move {
                    let token = state?;
                    let res = cfg
                        .client
                        .list_objects_v2()
                        .bucket(&cfg.bucket)
                        .prefix(&full_prefix)
                        .set_continuation_token(token)
                        .send()
                        .await;
                    let out = match res {
                        Ok(o) => o,
                        Err(e) => {
                            let what = format!("s3://{}/{}", cfg.bucket, full_prefix);
                            return Some((Err(s3_error("ListObjectsV2", &what, e)), None));
                        }
                    };
                    let page: Vec<ObjectMeta> = out
                        .contents()
                        .iter()
                        .filter_map(|o| {
                            let k = o.key()?;
                            Some(ObjectMeta {
                                key: cfg.rel(k),
                                size: o.size().unwrap_or(0).max(0) as u64,
                                mtime: o.last_modified().map(|t| t.as_secs_f64()),
                                etag: o.e_tag().map(|e| e.trim_matches('"').to_string()),
                            })
                        })
                        .collect();
                    let next = if out.is_truncated() == Some(true) {
                        out.next_continuation_token().map(|t| Some(t.to_string()))
                    } else {
                        None
                    };
                    Some((Ok(page), next))
                }
            },
        ))
    }

    fn head(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<ObjectMeta>>> {
        let cfg = self.cfg.clone();
        let key = key.to_string();
        Box::pin(async move { head_object(&cfg, &key).await })
    }

    fn delete(&self, keys: Vec<String>) -> BoxFuture<'static, anyhow::Result<usize>> {
        let cfg = self.cfg.clone();
        Box::pin(async move {
            let mut n = 0;
            for batch in keys.chunks(DELETE_BATCH) {
                let ids = batch
                    .iter()
                    .map(|k| ObjectIdentifier::builder().key(cfg.full(k)).build())
                    .collect::<Result<Vec<_>, _>>()?;
                let what = format!(
                    "{} keys in s3://{}/{} ({}...)",
                    batch.len(),
                    cfg.bucket,
                    cfg.prefix,
                    batch[0]
                );
                let out = cfg
                    .client
                    .delete_objects()
                    .bucket(&cfg.bucket)
                    .delete(Delete::builder().set_objects(Some(ids)).build()?)
                    .send()
                    .await
                    .map_err(|e| s3_error("DeleteObjects", &what, e))?;
                if let Some(err) = out.errors().first() {
                    bail!(
                        "S3 DeleteObjects s3://{}/{}: {}: {}",
                        cfg.bucket,
                        err.key().unwrap_or("?"),
                        err.code().unwrap_or("error"),
                        err.message().unwrap_or("")
                    );
                }
                n += out.deleted().len();
            }
            Ok(n)
        })
    }

    fn copy(&self, from: &str, to: &str) -> BoxFuture<'static, anyhow::Result<()>> {
        let cfg = self.cfg.clone();
        let (from, to) = (from.to_string(), to.to_string());
        Box::pin(async move {
            let what = format!("{} to {}", cfg.url(&from), cfg.url(&to));
            // HEAD first: the size picks CopyObject or a multipart copy, and a missing source fails
            // before anything is created at the destination.
            let Some(head) = head_raw(&cfg, &from).await? else {
                bail!(
                    "S3 CopyObject {what}: no object {} (not found)",
                    cfg.url(&from)
                );
            };
            let size = head.content_length().unwrap_or(0).max(0) as u64;
            if size > cfg.copy_threshold {
                return copy_multipart(&cfg, &from, &to, &what, size, &head).await;
            }
            let src = format!("{}/{}", cfg.bucket, urlencode_key(&cfg.full(&from)));
            let mut req = cfg
                .client
                .copy_object()
                .bucket(&cfg.bucket)
                .key(cfg.full(&to))
                .copy_source(src);
            if let Some(s) = &cfg.sse {
                req = req.server_side_encryption(s.as_str().into());
            }
            if let Some(k) = &cfg.kms_key_id {
                req = req.ssekms_key_id(k);
            }
            req.send()
                .await
                .map_err(|e| s3_error("CopyObject", &what, e))?;
            Ok(())
        })
    }

    fn create_if_absent(&self, key: &str, data: Bytes) -> BoxFuture<'static, anyhow::Result<bool>> {
        let cfg = self.cfg.clone();
        let key = key.to_string();
        Box::pin(async move {
            let what = cfg.url(&key);
            let created = (|| {
                let mut req = cfg
                    .client
                    .put_object()
                    .bucket(&cfg.bucket)
                    .key(cfg.full(&key))
                    .if_none_match("*")
                    .body(ByteStream::from(data.clone()));
                if let Some(s) = &cfg.sse {
                    req = req.server_side_encryption(s.as_str().into());
                }
                if let Some(k) = &cfg.kms_key_id {
                    req = req.ssekms_key_id(k);
                }
                async move {
                    match req.send().await {
                        Ok(_) => Ok(true),
                        Err(e) if status_of(&e) == Some(412) => Ok(false),
                        Err(e) => Err(e),
                    }
                }
            })
            .retry(CONDITIONAL_WRITE_BACKOFF)
            // 409 ConditionalRequestConflict: a concurrent conditional write; try again.
            .when(|e| status_of(e) == Some(409))
            .await;
            created.map_err(|e| s3_error("PutObject (If-None-Match)", &what, e))
        })
    }
}

async fn head_object(cfg: &Cfg, key: &str) -> anyhow::Result<Option<ObjectMeta>> {
    Ok(head_raw(cfg, key).await?.map(|o| ObjectMeta {
        key: key.to_string(),
        size: o.content_length().unwrap_or(0).max(0) as u64,
        mtime: o.last_modified().map(|t| t.as_secs_f64()),
        etag: o.e_tag().map(|e| e.trim_matches('"').to_string()),
    }))
}

/// HeadObject; `None` when the key does not exist (a missing bucket is an error).
async fn head_raw(cfg: &Cfg, key: &str) -> anyhow::Result<Option<HeadObjectOutput>> {
    let what = cfg.url(key);
    let res = cfg
        .client
        .head_object()
        .bucket(&cfg.bucket)
        .key(cfg.full(key))
        .send()
        .await;
    match res {
        Ok(o) => Ok(Some(o)),
        Err(e) if status_of(&e) == Some(404) => {
            // HEAD answers have no body: a missing bucket looks like a missing key. Tell them apart
            // once per store with HeadBucket, so that a wrong bucket is an error, not "absent".
            check_bucket(cfg, &what).await?;
            Ok(None)
        }
        Err(e) if status_of(&e) == Some(403) => bail!(
            "S3 HeadObject {what}: AccessDenied (HTTP 403; check the credentials and the bucket policy)"
        ),
        Err(e) => Err(s3_error("HeadObject", &what, e)),
    }
}

/// Copies a source too large for one CopyObject: CreateMultipartUpload, UploadPartCopy of byte ranges
/// (`concurrency` at a time; nothing passes through this process), CompleteMultipartUpload. Any failure
/// aborts the upload, so the destination is never partial.
async fn copy_multipart(
    cfg: &Arc<Cfg>,
    from: &str,
    to: &str,
    what: &str,
    size: u64,
    head: &HeadObjectOutput,
) -> anyhow::Result<()> {
    let dst = cfg.full(to);
    // CopyObject would carry these over; a multipart upload starts without them.
    let create = cfg
        .client
        .create_multipart_upload()
        .bucket(&cfg.bucket)
        .key(&dst)
        .set_content_type(head.content_type().map(str::to_string))
        .set_content_encoding(head.content_encoding().map(str::to_string))
        .set_content_disposition(head.content_disposition().map(str::to_string))
        .set_content_language(head.content_language().map(str::to_string))
        .set_cache_control(head.cache_control().map(str::to_string))
        .set_metadata(head.metadata().cloned());
    let upload_id = create_multipart(cfg, create, what).await?;
    let res = copy_parts(cfg, from, &dst, what, &upload_id, size, head.e_tag()).await;
    if res.is_err() {
        abort_multipart(cfg, &dst, &upload_id).await;
    }
    res
}

async fn copy_parts(
    cfg: &Arc<Cfg>,
    from: &str,
    dst: &str,
    what: &str,
    upload_id: &str,
    size: u64,
    etag: Option<&str>,
) -> anyhow::Result<()> {
    let src = format!("{}/{}", cfg.bucket, urlencode_key(&cfg.full(from)));
    // Parts grow for sources that would need more than 10,000 of them.
    let part = cfg.copy_part_size.max(size.div_ceil(MAX_PARTS));
    let ranges: Vec<(i32, u64, u64)> = (0..size)
        .step_by(part as usize)
        .enumerate()
        .map(|(i, s)| (i as i32 + 1, s, (s + part).min(size)))
        .collect();
    let parts: Vec<CompletedPart> = futures::stream::iter(ranges)
        .map(|(n, start, end)| {
            let src = src.clone();
            async move {
                let out = cfg
                    .client
                    .upload_part_copy()
                    .bucket(&cfg.bucket)
                    .key(dst)
                    .upload_id(upload_id)
                    .part_number(n)
                    .copy_source(src)
                    .copy_source_range(format!("bytes={start}-{}", end - 1))
                    // Pinned to the version HEAD saw: a source replaced mid-copy fails the copy.
                    .set_copy_source_if_match(etag.map(str::to_string))
                    .send()
                    .await
                    .map_err(|e| s3_error("UploadPartCopy", &format!("{what} part {n}"), e))?;
                let r = out.copy_part_result();
                anyhow::Ok(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(r.and_then(|r| r.e_tag()).map(str::to_string))
                        .set_checksum_crc32(r.and_then(|r| r.checksum_crc32()).map(str::to_string))
                        .set_checksum_crc32_c(
                            r.and_then(|r| r.checksum_crc32_c()).map(str::to_string),
                        )
                        .set_checksum_crc64_nvme(
                            r.and_then(|r| r.checksum_crc64_nvme()).map(str::to_string),
                        )
                        .set_checksum_sha1(r.and_then(|r| r.checksum_sha1()).map(str::to_string))
                        .set_checksum_sha256(
                            r.and_then(|r| r.checksum_sha256()).map(str::to_string),
                        )
                        .build(),
                )
            }
        })
        // The first error drops the parts still in flight.
        .buffer_unordered(cfg.concurrency)
        .try_collect()
        .await?;
    complete_multipart(cfg, dst, upload_id, parts, what).await?;
    Ok(())
}

async fn check_bucket(cfg: &Cfg, what: &str) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    if cfg.bucket_ok.load(Ordering::Relaxed) {
        return Ok(());
    }
    match cfg.client.head_bucket().bucket(&cfg.bucket).send().await {
        Ok(_) => {
            cfg.bucket_ok.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) if status_of(&e) == Some(404) => bail!(
            "S3 HeadObject {what}: NoSuchBucket: bucket '{}' does not exist",
            cfg.bucket
        ),
        // Without ListBucket/HeadBucket permission the key is simply absent.
        Err(e) if status_of(&e) == Some(403) => Ok(()),
        Err(e) => Err(s3_error("HeadBucket", what, e)),
    }
}

async fn get_range(
    cfg: &Cfg,
    full: &str,
    what: &str,
    etag: Option<&str>,
    start: u64,
    end: u64,
) -> anyhow::Result<Bytes> {
    // The SDK retries the request; a body cut off midway is retried here.
    let range = format!("bytes={}-{}", start, end - 1);
    let read = || async {
        let mut req = cfg
            .client
            .get_object()
            .bucket(&cfg.bucket)
            .key(full)
            .range(&range);
        if let Some(e) = etag {
            req = req.if_match(format!("\"{e}\""));
        }
        let out = req
            .send()
            .await
            .map_err(|e| s3_error("GetObject", &format!("{what} bytes {start}-{end}"), e))
            .map_err(RangeFailed::Request)?;
        out.body.collect().await.map_err(RangeFailed::Body)
    };
    let body = read
        .retry(BODY_BACKOFF)
        .when(|f| matches!(f, RangeFailed::Body(_)))
        .notify(|f, _| {
            if let RangeFailed::Body(e) = f {
                tracing::warn!("reading {what} at {start}: {e}; retrying");
            }
        })
        .await;
    let b = match body {
        Ok(b) => b.into_bytes(),
        Err(RangeFailed::Request(e)) => return Err(e),
        Err(RangeFailed::Body(e)) => bail!("S3 GetObject {what} bytes {start}-{end}: {e}"),
    };
    if b.len() as u64 != end - start {
        bail!(
            "S3 GetObject {what}: expected {} bytes at offset {start}, got {}",
            end - start,
            b.len()
        );
    }
    Ok(b)
}

/// Why a ranged GET failed: the request (the SDK retried it already), or its body midway.
enum RangeFailed {
    Request(anyhow::Error),
    Body(aws_smithy_types::byte_stream::error::Error),
}

fn urlencode_key(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    for b in k.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
