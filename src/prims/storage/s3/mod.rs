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
//!   naming the bucket and key. On top of that, a ranged GET whose body breaks off midway and a
//!   conditional PutObject answered 409 are sent again (`base::retry`).
//!
//! Here: the options, the client and the error messages. `upload`: PutObject, multipart upload.
//! `conditional`: GET with the ETag, If-None-Match / If-Match puts and If-Match deletes (leases).
//! `download`: GetObject and ranged GETs. `copy`: CopyObject and multipart copy. `objects`:
//! ListObjectsV2, HeadObject, DeleteObjects.

use std::sync::Arc;

use anyhow::{anyhow, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use super::{Backend, ObjectMeta, OpenOpts, Range, Versioned, opt_bool, opt_str, opt_u64};
use crate::base::errors::UsageError;
use crate::base::stream::{BoxReader, BoxSink};

mod conditional;
mod copy;
mod download;
mod objects;
mod upload;

/// S3's minimum part size (except the last part).
const MIN_PART: u64 = 5 * 1024 * 1024;
const DEFAULT_PART: u64 = 8 * 1024 * 1024;
const DEFAULT_CONCURRENCY: usize = 4;
/// CopyObject refuses sources above 5 GiB; UploadPartCopy parts are at most 5 GiB too.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
const DEFAULT_COPY_THRESHOLD: u64 = 256 * 1024 * 1024;
const DEFAULT_COPY_PART: u64 = 64 * 1024 * 1024;

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
                // No error body (a HEAD, or a proxy's answer): the status is all there is to say.
                let status = ctx.raw().status().as_u16();
                return anyhow!("S3 {op} {what}: HTTP {status} {}", status_meaning(status));
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

/// What an HTTP status means to someone reading an S3 error without a body.
fn status_meaning(status: u16) -> &'static str {
    match status {
        400 => "(bad request)",
        403 => "(access denied: check the credentials and the bucket policy)",
        404 => "(not found)",
        409 => "(conflict: a concurrent write to the same key)",
        412 => "(precondition failed: the object changed)",
        429 | 503 => "(the server is throttling or unavailable; the request was retried)",
        500..=599 => "(server error; the request was retried)",
        _ => "",
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
        Box::pin(upload::writer(self.cfg.clone(), key.to_string()))
    }

    fn reader(&self, key: &str, range: Range) -> BoxFuture<'static, anyhow::Result<BoxReader>> {
        Box::pin(download::reader(self.cfg.clone(), key.to_string(), range))
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, anyhow::Result<Vec<ObjectMeta>>> {
        objects::list(self.cfg.clone(), prefix)
    }

    fn head(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<ObjectMeta>>> {
        let cfg = self.cfg.clone();
        let key = key.to_string();
        Box::pin(async move { objects::head_object(&cfg, &key).await })
    }

    fn delete(&self, keys: Vec<String>) -> BoxFuture<'static, anyhow::Result<usize>> {
        Box::pin(objects::delete(self.cfg.clone(), keys))
    }

    fn copy(&self, from: &str, to: &str) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(copy::copy(
            self.cfg.clone(),
            from.to_string(),
            to.to_string(),
        ))
    }

    fn get_versioned(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<Versioned>>> {
        Box::pin(conditional::get_versioned(
            self.cfg.clone(),
            key.to_string(),
        ))
    }

    fn create_if_absent(
        &self,
        key: &str,
        data: Bytes,
    ) -> BoxFuture<'static, anyhow::Result<Option<String>>> {
        Box::pin(conditional::create_if_absent(
            self.cfg.clone(),
            key.to_string(),
            data,
        ))
    }

    fn replace_if(
        &self,
        key: &str,
        data: Bytes,
        version: &str,
    ) -> BoxFuture<'static, anyhow::Result<Option<String>>> {
        Box::pin(conditional::replace_if(
            self.cfg.clone(),
            key.to_string(),
            data,
            version.to_string(),
        ))
    }

    fn delete_if(&self, key: &str, version: &str) -> BoxFuture<'static, anyhow::Result<bool>> {
        Box::pin(conditional::delete_if(
            self.cfg.clone(),
            key.to_string(),
            version.to_string(),
        ))
    }
}
