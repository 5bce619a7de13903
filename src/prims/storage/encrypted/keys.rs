//! The keys of an encrypted store: recipients, identities, a passphrase, from options or the environment.

use std::io::{Read, Write};

use age::secrecy::SecretString;
use anyhow::{Context as _, anyhow, bail};

use super::super::{OpenOpts, opt_str};
use super::SCRYPT_LOG_N;
use crate::base::errors::UsageError;

/// The keys of an encrypted store.
pub struct Keys {
    pub(super) recipients: Vec<Box<dyn age::Recipient + Send + Sync>>,
    pub(super) identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    pub(super) passphrase: Option<SecretString>,
}

impl Keys {
    /// From the options (`recipients`, `identity`, `passphrase`) or else the environment
    /// (`REWIND_RECIPIENTS`, `REWIND_IDENTITY`, `REWIND_PASSPHRASE`); `None` when there are none.
    pub fn from_opts(opts: &OpenOpts) -> anyhow::Result<Option<Keys>> {
        let get = |opt: &str, env: &str| {
            opt_str(opts, opt).or_else(|| std::env::var(env).ok().filter(|v| !v.trim().is_empty()))
        };
        let recipients = get("recipients", "REWIND_RECIPIENTS");
        let identity = get("identity", "REWIND_IDENTITY");
        let passphrase = get("passphrase", "REWIND_PASSPHRASE");
        if recipients.is_none() && identity.is_none() && passphrase.is_none() {
            return Ok(None);
        }
        let mut keys = Keys {
            recipients: Vec::new(),
            identities: Vec::new(),
            passphrase: None,
        };
        if let Some(p) = passphrase {
            crate::base::redact::register(&p);
            keys.passphrase = Some(SecretString::from(p));
        }
        if let Some(r) = recipients {
            keys.recipients = parse_recipients(&r)?;
        }
        if let Some(path) = identity {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("identity={path}: reading the identity file"))?;
            for line in text.lines() {
                let l = line.trim();
                if l.starts_with("AGE-SECRET-KEY-") {
                    crate::base::redact::register(l);
                }
            }
            let file = age::IdentityFile::from_buffer(text.as_bytes()).map_err(|e| {
                UsageError(format!(
                    "identity={path}: not an age identity file (AGE-SECRET-KEY-1... lines): {e}"
                ))
            })?;
            // An identity alone also writes (leases, and backups with identity=): to its own
            // public keys, when no recipients are given.
            if keys.recipients.is_empty() && keys.passphrase.is_none() {
                for l in text.lines().map(str::trim) {
                    if let Ok(id) = l.parse::<age::x25519::Identity>() {
                        keys.recipients.push(Box::new(id.to_public()));
                    }
                }
            }
            keys.identities = file
                .into_identities()
                .map_err(|e| UsageError(format!("identity={path}: unusable identity: {e}")))?;
            if keys.identities.is_empty() {
                bail!(UsageError(format!(
                    "identity={path}: no AGE-SECRET-KEY-1... identity in the file"
                )));
            }
        }
        Ok(Some(keys))
    }

    pub(super) fn encryptor(&self) -> anyhow::Result<age::Encryptor> {
        if !self.recipients.is_empty() {
            return age::Encryptor::with_recipients(
                self.recipients
                    .iter()
                    .map(|r| r.as_ref() as &dyn age::Recipient),
            )
            .map_err(|e| anyhow!("age: {e}"));
        }
        if let Some(p) = &self.passphrase {
            let mut r = age::scrypt::Recipient::new(p.clone());
            r.set_work_factor(SCRYPT_LOG_N);
            return age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
                .map_err(|e| anyhow!("age: {e}"));
        }
        bail!(UsageError(
            "this store is opened for reading encrypted objects only (identity=); writing needs \
             recipients (encrypt=age1...) or a passphrase"
                .into()
        ))
    }

    pub(super) fn decrypt<R: Read>(
        &self,
        key: &str,
        input: R,
    ) -> anyhow::Result<age::stream::StreamReader<R>> {
        let d = age::Decryptor::new(input).map_err(|e| decrypt_error(key, e))?;
        let scrypt = self.passphrase.as_ref().map(|p| {
            let mut i = age::scrypt::Identity::new(p.clone());
            i.set_max_work_factor(22);
            i
        });
        if self.identities.is_empty() && scrypt.is_none() {
            bail!(
                "{key} is encrypted (age): give identity= or passphrase= (this store has recipients only, which cannot decrypt)"
            );
        }
        let ids = self
            .identities
            .iter()
            .map(|i| i.as_ref() as &dyn age::Identity)
            .chain(scrypt.as_ref().map(|i| i as &dyn age::Identity));
        d.decrypt(ids).map_err(|e| match e {
            // A wrong passphrase fails the scrypt stanza's decryption.
            age::DecryptError::DecryptionFailed if scrypt.is_some() => {
                anyhow!(
                    "{key}: the key does not match: the passphrase does not open it (or its header is damaged)"
                )
            }
            e => decrypt_error(key, e),
        })
    }

    pub(super) fn encrypt_bytes(&self, data: &[u8]) -> anyhow::Result<bytes::Bytes> {
        let mut w = self
            .encryptor()?
            .wrap_output(Vec::with_capacity(data.len() + 256))?;
        w.write_all(data)?;
        Ok(w.finish()?.into())
    }

    pub(super) fn decrypt_bytes(&self, key: &str, data: &[u8]) -> anyhow::Result<bytes::Bytes> {
        let mut r = self.decrypt(key, data)?;
        let mut out = Vec::with_capacity(data.len());
        r.read_to_end(&mut out)
            .map_err(|e| anyhow!("{key}: decryption failed (damaged or tampered object): {e}"))?;
        Ok(out.into())
    }
}

pub(super) fn parse_recipients(
    spec: &str,
) -> anyhow::Result<Vec<Box<dyn age::Recipient + Send + Sync>>> {
    let mut words: Vec<String> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if part.starts_with("age1") {
            words.push(part.to_string());
        } else {
            let text = std::fs::read_to_string(part).with_context(|| {
                format!("recipients: '{part}' is neither an age1... public key nor a readable file")
            })?;
            for line in text.lines().map(str::trim) {
                if !line.is_empty() && !line.starts_with('#') {
                    words.push(line.to_string());
                }
            }
        }
    }
    let mut out: Vec<Box<dyn age::Recipient + Send + Sync>> = Vec::new();
    for w in words {
        let r: age::x25519::Recipient = w.parse().map_err(|e| {
            UsageError(format!(
                "recipients: '{w}' is not an age X25519 public key (age1...): {e}"
            ))
        })?;
        out.push(Box::new(r));
    }
    if out.is_empty() {
        bail!(UsageError("recipients: no age1... public key given".into()));
    }
    Ok(out)
}

pub(super) fn decrypt_error(key: &str, e: age::DecryptError) -> anyhow::Error {
    match e {
        age::DecryptError::NoMatchingKeys => anyhow!(
            "{key}: the key does not match: it was encrypted for other recipients or another passphrase than the identity/passphrase given"
        ),
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            anyhow!(
                "{key} is not encrypted with age (written without encryption, or damaged); open the store without encrypt/identity/passphrase to read it"
            )
        }
        age::DecryptError::ExcessiveWork { required, target } => anyhow!(
            "{key}: its passphrase encryption needs scrypt work factor {required}, more than the {target} allowed"
        ),
        other => anyhow!("{key}: decryption failed (damaged or tampered object): {other}"),
    }
}

/// `rewind key new FILE`: a fresh X25519 identity written to FILE (created, never overwritten, mode
/// 0600, in age-keygen's format so `age -d -i FILE` reads it); returns its public key (the recipient).
pub fn new_identity_file(path: &std::path::Path) -> anyhow::Result<String> {
    use age::secrecy::ExposeSecret;
    use std::os::unix::fs::OpenOptionsExt;
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow!(UsageError(format!(
                "{}: already exists; a key file is never overwritten (remove it or pick another name)",
                path.display()
            ))),
            _ => anyhow!(e).context(format!("creating {}", path.display())),
        })?;
    let text = format!(
        "# created: {}\n# public key: {public}\n{}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        id.to_string().expose_secret()
    );
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(public)
}

/// `rewind key public FILE`: the public keys (recipients) of the X25519 identities in an identity file.
pub fn public_keys(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!(UsageError(format!("{}: {e}", path.display()))))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter_map(|l| l.parse::<age::x25519::Identity>().ok())
        .map(|id| id.to_public().to_string())
        .collect();
    if keys.is_empty() {
        bail!(UsageError(format!(
            "{}: no AGE-SECRET-KEY-1... identity in the file",
            path.display()
        )));
    }
    Ok(keys)
}
