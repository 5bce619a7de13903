//! Server-side copies: one CopyObject for sources up to `copy_threshold`, else a multipart copy
//! (UploadPartCopy of `copy_part_size` ranges, `concurrency` at a time), aborted on any failure.

use std::sync::Arc;

use anyhow::bail;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::CompletedPart;
use futures::{StreamExt, TryStreamExt};

use super::objects::head_raw;
use super::upload::{abort_multipart, complete_multipart, create_multipart};
use super::{Cfg, s3_error};

/// A multipart upload has at most 10,000 parts.
const MAX_PARTS: u64 = 10_000;

/// Copies `from` to `to` within the store; a missing source fails before anything is created.
pub(super) async fn copy(cfg: Arc<Cfg>, from: String, to: String) -> anyhow::Result<()> {
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
