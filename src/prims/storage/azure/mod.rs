//! The Azure Blob backend: `az://container/prefix`, on the object_store crate (it signs requests and
//! retries transient failures with backoff).
//!
//! Credentials: `account` + `access_key`, or a `sas_token`, or a `connection_string`, from opts or from
//! AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING
//! (then object_store's own AZURE_* variables). `endpoint` points at another blob endpoint (Azurite:
//! `http://127.0.0.1:10000/devstoreaccount1`); `use_emulator=true` uses Azurite's well-known account.
//! Every key, token and connection string is registered as a secret.
//!
//! Uploads go through object_store's buffered writer: one Put Blob when small, else blocks of
//! `part_size` (default 8 MiB), `concurrency` (default 4) in flight, committed by Put Block List only
//! when the writer commits; uncommitted blocks are never visible and Azure drops them.
//!
//! Deletes: Blob Batch requests of up to 256 keys (object_store's `delete_stream`), 4 in flight.
//! Copies: object_store's Copy Blob (server-side; no size limit of its own, see the README).
//!
//! Here: the options, the client, error messages, listing, HEAD and copies. `upload`: the writer.
//! `download`: the reader. `delete`: Blob Batch deletes. `conditional`: GET with the ETag and
//! conditional puts (leases).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path as OPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::{Backend, ObjectMeta, OpenOpts, Range, Versioned, opt_bool, opt_str, opt_u64};
use crate::base::errors::UsageError;
use crate::base::stream::{BoxReader, BoxSink};

mod conditional;
mod delete;
mod download;
mod upload;

const DEFAULT_PART: u64 = 8 * 1024 * 1024;
const DEFAULT_CONCURRENCY: usize = 4;
const PAGE: usize = 1000;

struct Cfg {
    store: Arc<MicrosoftAzure>,
    container: String,
    prefix: String,
    part_size: usize,
    concurrency: usize,
    /// Set once the container is known to exist.
    container_ok: AtomicBool,
}

impl Cfg {
    fn full(&self, key: &str) -> String {
        super::join(&self.prefix, key)
    }
    fn path(&self, key: &str) -> OPath {
        OPath::from(self.full(key))
    }
    fn url(&self, key: &str) -> String {
        format!("az://{}/{}", self.container, self.full(key))
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

pub struct AzureBackend {
    cfg: Arc<Cfg>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Parses `Key=Value;Key=Value` (values may contain '=').
fn connection_string(s: &str) -> Vec<(String, String)> {
    s.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

impl AzureBackend {
    pub fn open(rest: &str, opts: &OpenOpts) -> anyhow::Result<AzureBackend> {
        let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if container.is_empty() {
            bail!(UsageError(format!(
                "store URL 'az://{rest}' names no container"
            )));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            super::check_key(&prefix)?;
        }
        let mut account = opt_str(opts, "account").or_else(|| env("AZURE_STORAGE_ACCOUNT"));
        let mut key = opt_str(opts, "access_key").or_else(|| env("AZURE_STORAGE_KEY"));
        let mut sas = opt_str(opts, "sas_token").or_else(|| env("AZURE_STORAGE_SAS_TOKEN"));
        let mut endpoint = opt_str(opts, "endpoint");
        if let Some(cs) =
            opt_str(opts, "connection_string").or_else(|| env("AZURE_STORAGE_CONNECTION_STRING"))
        {
            crate::base::redact::register(&cs);
            for (k, v) in connection_string(&cs) {
                match k.as_str() {
                    "AccountName" => account = account.or(Some(v)),
                    "AccountKey" => key = key.or(Some(v)),
                    "SharedAccessSignature" => sas = sas.or(Some(v)),
                    "BlobEndpoint" => endpoint = endpoint.or(Some(v)),
                    _ => {}
                }
            }
        }
        for s in [&key, &sas].into_iter().flatten() {
            crate::base::redact::register(s);
        }
        let mut b = MicrosoftAzureBuilder::from_env().with_container_name(container);
        if opt_bool(opts, "use_emulator").unwrap_or(false) && endpoint.is_none() {
            b = b.with_use_emulator(true);
        }
        if let Some(a) = &account {
            b = b.with_account(a);
        }
        if let Some(k) = &key {
            b = b.with_access_key(k);
        } else if let Some(s) = &sas {
            let pairs: Vec<(String, String)> = s
                .trim_start_matches('?')
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), percent_decode(v)))
                .collect();
            b = b.with_sas_authorization(pairs);
        }
        if let Some(e) = &endpoint {
            b = b
                .with_endpoint(e.trim_end_matches('/').to_string())
                .with_allow_http(e.starts_with("http://"));
        }
        let part_size = opt_u64(opts, "part_size").unwrap_or(DEFAULT_PART).max(1024) as usize;
        let concurrency = opt_u64(opts, "concurrency")
            .map(|c| c.clamp(1, 64) as usize)
            .unwrap_or(DEFAULT_CONCURRENCY);
        let store = b
            .build()
            .map_err(|e| anyhow!(crate::base::redact::redact(&e.to_string())))
            .with_context(|| format!("opening az://{container} (set account and access_key, sas_token or connection_string)"))?;
        Ok(AzureBackend {
            cfg: Arc::new(Cfg {
                store: Arc::new(store),
                container: container.to_string(),
                prefix,
                part_size,
                concurrency,
                container_ok: false.into(),
            }),
        })
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn az_error(op: &str, what: &str, e: object_store::Error) -> anyhow::Error {
    let hint = match &e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => " (check the account key or SAS token)",
        _ if sub_status(&e) == Some(403) => " (check the account key or SAS token permissions)",
        _ => "",
    };
    anyhow!(
        "Azure {op} {what}: {}{hint}",
        crate::base::redact::redact(&e.to_string())
    )
}

fn meta(cfg: &Cfg, m: &object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        key: cfg.rel(m.location.as_ref()),
        size: m.size,
        mtime: Some(m.last_modified.timestamp_millis() as f64 / 1000.0),
        etag: m.e_tag.as_ref().map(|e| e.trim_matches('"').to_string()),
    }
}

/// A batch sub-request's HTTP status: object_store keeps it only in its message, "... (code: 503)".
fn sub_status(e: &object_store::Error) -> Option<u16> {
    let s = e.to_string();
    let rest = &s[s.rfind("(code: ")? + "(code: ".len()..];
    rest.split(')').next()?.trim().parse().ok()
}

/// A missing container answers 404 like a missing blob: tell them apart (once per store) with a
/// listing of `key`'s name, so that a wrong container is an error rather than "nothing there".
async fn check_container(cfg: &Cfg, key: &str, op: &str) -> anyhow::Result<()> {
    if cfg.container_ok.load(Ordering::Relaxed) {
        return Ok(());
    }
    match cfg.store.list_with_delimiter(Some(&cfg.path(key))).await {
        // object_store reports a failed listing as a generic error carrying Azure's error code.
        Err(e)
            if matches!(e, object_store::Error::NotFound { .. })
                || e.to_string().contains("ContainerNotFound") =>
        {
            bail!(
                "Azure {op} {}: ContainerNotFound: container '{}' does not exist",
                cfg.url(key),
                cfg.container
            )
        }
        // Without List permission (a SAS may lack it) the blob is simply absent.
        Err(e) => tracing::debug!(
            "Azure ListBlobs to check az://{}: {}",
            cfg.container,
            crate::base::redact::redact(&e.to_string())
        ),
        Ok(_) => {}
    }
    cfg.container_ok.store(true, Ordering::Relaxed);
    Ok(())
}

impl Backend for AzureBackend {
    fn url(&self) -> String {
        let p = self.cfg.prefix.trim_matches('/');
        if p.is_empty() {
            format!("az://{}", self.cfg.container)
        } else {
            format!("az://{}/{}", self.cfg.container, p)
        }
    }

    fn writer(&self, key: &str) -> BoxFuture<'static, anyhow::Result<BoxSink>> {
        Box::pin(upload::writer(self.cfg.clone(), key.to_string()))
    }

    fn reader(&self, key: &str, range: Range) -> BoxFuture<'static, anyhow::Result<BoxReader>> {
        Box::pin(download::reader(self.cfg.clone(), key.to_string(), range))
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
        // object_store lists whole path segments: list the parent "directory", filter by the string prefix.
        let dir = match full_prefix.rfind('/') {
            Some(i) => full_prefix[..i].to_string(),
            None => String::new(),
        };
        let dir_path = if dir.is_empty() {
            None
        } else {
            Some(OPath::from(dir.as_str()))
        };
        let what = format!("az://{}/{}", cfg.container, full_prefix);
        let cfg2 = cfg.clone();
        let fp = full_prefix.clone();
        cfg.store
            .list(dir_path.as_ref())
            .try_filter(move |m| futures::future::ready(m.location.as_ref().starts_with(&fp)))
            .chunks(PAGE)
            .map(move |items| {
                let mut page = Vec::with_capacity(items.len());
                for it in items {
                    match it {
                        Ok(m) => page.push(meta(&cfg2, &m)),
                        Err(e) => return Err(az_error("ListBlobs", &what, e)),
                    }
                }
                Ok(page)
            })
            .boxed()
    }

    fn head(&self, key: &str) -> BoxFuture<'static, anyhow::Result<Option<ObjectMeta>>> {
        let cfg = self.cfg.clone();
        let key = key.to_string();
        Box::pin(async move {
            match cfg.store.head(&cfg.path(&key)).await {
                Ok(m) => {
                    let mut m = meta(&cfg, &m);
                    m.key = key;
                    Ok(Some(m))
                }
                Err(object_store::Error::NotFound { .. }) => {
                    check_container(&cfg, &key, "GetBlobProperties").await?;
                    Ok(None)
                }
                Err(e) => Err(az_error("GetBlobProperties", &cfg.url(&key), e)),
            }
        })
    }

    fn delete(&self, keys: Vec<String>) -> BoxFuture<'static, anyhow::Result<usize>> {
        Box::pin(delete::delete(self.cfg.clone(), keys))
    }

    fn copy(&self, from: &str, to: &str) -> BoxFuture<'static, anyhow::Result<()>> {
        let cfg = self.cfg.clone();
        let (from, to) = (from.to_string(), to.to_string());
        Box::pin(async move {
            let what = format!("{} to {}", cfg.url(&from), cfg.url(&to));
            match cfg.store.copy(&cfg.path(&from), &cfg.path(&to)).await {
                Ok(()) => Ok(()),
                Err(object_store::Error::NotFound { .. }) => {
                    bail!(
                        "Azure CopyBlob {what}: no object {} (not found)",
                        cfg.url(&from)
                    )
                }
                Err(e) => Err(az_error("CopyBlob", &what, e)),
            }
        })
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
