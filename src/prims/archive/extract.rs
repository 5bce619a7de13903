//! Extracting and listing tar streams safely.
//!
//! Two blocking threads: one reads the (async) input and decompresses, one parses tar and writes files,
//! connected by a small bounded channel, so decompression and file writes overlap like
//! `zstd -d | tar -x`. Every entry is checked before anything is written: no absolute paths, no `..`,
//! no device or fifo files, no symlink whose target leaves the destination, no hard link to a file
//! outside it, and no write through a symlink that resolves outside it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};

use anyhow::{Context, anyhow};

use super::create::{CHUNK, Compression};
use crate::base::stream::{BoxReader, ChannelReader};
use crate::prims::progress::Progress;

/// An entry the archive may not contain; the message names it.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refused {}

#[derive(Default, Debug, Clone)]
pub struct ExtractStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub bytes: u64,
    pub compressed_bytes: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ListEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub mode: u32,
    pub mtime: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else {
        Compression::None
    }
}

/// Decompresses `input` into `tx` until its end; then reads the input to its very end (so a hashing
/// reader under it checks the whole object). Stops early when `stop` is set.
fn decode(
    input: BoxReader,
    tx: SyncSender<std::io::Result<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    progress: &Progress,
) -> anyhow::Result<u64> {
    struct Count<'a, R>(R, &'a Progress, u64);
    impl<R: Read> Read for Count<'_, R> {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(b)?;
            self.1.add(n as u64);
            self.2 += n as u64;
            Ok(n)
        }
    }
    let bridge = tokio_util::io::SyncIoBridge::new(input);
    let mut raw = BufReader::with_capacity(CHUNK, Count(bridge, progress, 0));
    let kind = detect(raw.fill_buf()?);
    let mut sending = true;
    let mut pump = |r: &mut dyn Read| -> anyhow::Result<()> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < buf.len() {
                let n = r.read(&mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Ok(());
            }
            buf.truncate(filled);
            if sending && tx.send(Ok(buf)).is_err() {
                // The tar reader is done (end-of-archive marker): keep reading to the end.
                sending = false;
            }
        }
    };
    let mut raw = match kind {
        Compression::Zstd => {
            let mut d = zstd::Decoder::with_buffer(raw)?;
            pump(&mut d).context("decompressing (zstd)")?;
            d.finish()
        }
        Compression::Gzip => {
            let mut d = flate2::bufread::MultiGzDecoder::new(raw);
            pump(&mut d).context("decompressing (gzip)")?;
            d.into_inner()
        }
        Compression::None => {
            pump(&mut raw)?;
            raw
        }
    };
    drop(tx);
    if !stop.load(Ordering::Relaxed) {
        std::io::copy(&mut raw, &mut std::io::sink())?;
    }
    Ok(raw.get_ref().2)
}

/// Runs `f` over a tar stream of `input`, with decompression on its own thread.
async fn with_tar<T: Send + 'static>(
    input: BoxReader,
    progress: Progress,
    f: impl FnOnce(&mut tar::Archive<ChannelReader>) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<(T, u64)> {
    let (tx, rx) = sync_channel::<std::io::Result<Vec<u8>>>(4);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let handle = tokio::runtime::Handle::current();
    let decoder = crate::base::blocking::spawn_blocking(move || {
        let _g = handle.enter();
        decode(input, tx, stop2, &progress)
    });
    let parser = crate::base::blocking::spawn_blocking(move || {
        let mut a = tar::Archive::new(ChannelReader::new(rx));
        let r = f(&mut a);
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        r
    });
    let parsed = parser.await.context("tar thread failed")?;
    let decoded = decoder.await.context("decompression thread failed")?;
    match (parsed, decoded) {
        (Err(e), _) if e.downcast_ref::<Refused>().is_some() => Err(e),
        (_, Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(e),
        (Ok(v), Ok(n)) => Ok((v, n)),
    }
}

fn kind_name(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Regular | tar::EntryType::Continuous => "file",
        tar::EntryType::Directory => "dir",
        tar::EntryType::Symlink => "symlink",
        tar::EntryType::Link => "hardlink",
        tar::EntryType::Char => "char device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        _ => "other",
    }
}

pub async fn list(input: BoxReader, progress: Progress) -> anyhow::Result<Vec<ListEntry>> {
    let (v, _) = with_tar(input, progress, |a| {
        let mut out = Vec::new();
        for e in a.entries().context("reading the archive")? {
            let e = e.context("reading the archive")?;
            let h = e.header();
            out.push(ListEntry {
                path: e.path()?.display().to_string(),
                kind: kind_name(h.entry_type()).to_string(),
                size: e.size(),
                mode: h.mode().unwrap_or(0),
                mtime: h.mtime().unwrap_or(0),
                link: e.link_name()?.map(|l| l.display().to_string()),
            });
        }
        Ok(out)
    })
    .await?;
    Ok(v)
}

/// A relative path made of normal components only, or why not.
fn clean_rel(p: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir => {}
            Component::ParentDir => return Err("its path contains '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("its path is absolute"),
        }
    }
    Ok(out)
}

pub async fn extract(
    input: BoxReader,
    to: PathBuf,
    progress: Progress,
) -> anyhow::Result<ExtractStats> {
    std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
    let root = std::fs::canonicalize(&to).with_context(|| format!("resolving {}", to.display()))?;
    let (mut stats, n) = with_tar(input, progress, move |a| unpack_all(a, &root)).await?;
    stats.compressed_bytes = n;
    Ok(stats)
}

fn refuse(name: &Path, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!(Refused(format!(
        "refusing archive entry '{}': {why}; nothing is written outside the destination",
        name.display()
    )))
}

/// Checks that `dir` (which exists) really lies inside `root`, following symlinks.
fn inside(root: &Path, dir: &Path) -> std::io::Result<bool> {
    Ok(std::fs::canonicalize(dir)?.starts_with(root))
}

fn unpack_all<R: Read>(a: &mut tar::Archive<R>, root: &Path) -> anyhow::Result<ExtractStats> {
    let mut stats = ExtractStats::default();
    // Directory modes and mtimes are applied at the end (files written later would change them).
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    let mut links: Vec<PathBuf> = Vec::new();
    let mut made: HashMap<PathBuf, ()> = HashMap::new();
    let mut buf = vec![0u8; CHUNK];
    for entry in a.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let raw_name = entry
            .path()
            .context("reading an entry's path")?
            .into_owned();
        let rel = clean_rel(&raw_name).map_err(|why| refuse(&raw_name, why))?;
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let mtime = entry.header().mtime().unwrap_or(0);
        match kind {
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(refuse(&raw_name, format!("it is a {}", kind_name(kind))));
            }
            tar::EntryType::GNUSparse => {
                return Err(refuse(&raw_name, "sparse files are not supported"));
            }
            _ => {}
        }
        if rel.as_os_str().is_empty() {
            if kind == tar::EntryType::Directory {
                // "./": the destination's own mode and mtime, applied at the end.
                dirs.insert(0, (root.to_path_buf(), mode, mtime));
                continue;
            }
            return Err(refuse(&raw_name, "its path is empty"));
        }
        let dest = root.join(&rel);
        let parent = dest.parent().unwrap_or(root).to_path_buf();
        if !made.contains_key(&parent) {
            // Create the parent chain component by component, refusing any that resolves outside.
            let mut cur = root.to_path_buf();
            for c in rel.parent().unwrap_or(Path::new("")).components() {
                cur.push(c);
                match std::fs::symlink_metadata(&cur) {
                    Ok(md) if md.is_dir() => {}
                    Ok(md) if md.file_type().is_symlink() => {
                        if !inside(root, &cur).unwrap_or(false) {
                            return Err(refuse(
                                &raw_name,
                                format!(
                                    "it would be written through the symlink '{}', which leads outside",
                                    cur.strip_prefix(root).unwrap_or(&cur).display()
                                ),
                            ));
                        }
                    }
                    Ok(_) => {
                        return Err(refuse(
                            &raw_name,
                            format!(
                                "'{}' is not a directory",
                                cur.strip_prefix(root).unwrap_or(&cur).display()
                            ),
                        ));
                    }
                    Err(_) => std::fs::create_dir(&cur)
                        .with_context(|| format!("creating {}", cur.display()))?,
                }
            }
            if !inside(root, &parent).unwrap_or(false) {
                return Err(refuse(
                    &raw_name,
                    "its directory resolves outside the destination",
                ));
            }
            made.insert(parent.clone(), ());
        }
        // Never write through whatever is already at the destination path (a symlink could lead out).
        // Regular files skip the check: they are created with O_EXCL (which never follows a symlink) and
        // only an existing entry (EEXIST) sends them through it, saving a stat per file.
        let clear = |dest: &Path| -> std::io::Result<()> {
            if let Ok(md) = std::fs::symlink_metadata(dest)
                && (!md.is_dir() || kind != tar::EntryType::Directory)
            {
                if md.is_dir() {
                    std::fs::remove_dir_all(dest)?;
                } else {
                    std::fs::remove_file(dest)?;
                }
            }
            Ok(())
        };
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            clear(&dest)?;
        }
        match kind {
            tar::EntryType::Directory => {
                if !dest.is_dir() {
                    std::fs::create_dir(&dest)
                        .with_context(|| format!("creating {}", dest.display()))?;
                }
                made.insert(dest.clone(), ());
                dirs.push((dest, mode, mtime));
                stats.dirs += 1;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| refuse(&raw_name, "a symlink without a target"))?
                    .into_owned();
                if target.is_absolute() {
                    return Err(refuse(
                        &raw_name,
                        format!(
                            "it is a symlink to the absolute path '{}'",
                            target.display()
                        ),
                    ));
                }
                // Resolve the target lexically from the symlink's real directory.
                let real_parent = std::fs::canonicalize(&parent)?;
                let mut depth: Vec<_> = real_parent
                    .strip_prefix(root)
                    .unwrap_or(Path::new(""))
                    .components()
                    .collect();
                for c in target.components() {
                    match c {
                        Component::ParentDir if depth.pop().is_none() => {
                            return Err(refuse(
                                &raw_name,
                                format!(
                                    "it is a symlink to '{}', outside the destination",
                                    target.display()
                                ),
                            ));
                        }
                        Component::Normal(_) => depth.push(c),
                        _ => {}
                    }
                }
                std::os::unix::fs::symlink(&target, &dest)
                    .with_context(|| format!("creating symlink {}", dest.display()))?;
                links.push(dest.clone());
                set_symlink_mtime(&dest, mtime);
                stats.symlinks += 1;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| refuse(&raw_name, "a hard link without a target"))?
                    .into_owned();
                let trel = clean_rel(&target).map_err(|why| {
                    refuse(
                        &raw_name,
                        format!("hard link target '{}': {why}", target.display()),
                    )
                })?;
                let src = root.join(&trel);
                let src_parent = src.parent().unwrap_or(root);
                let ok = inside(root, src_parent).unwrap_or(false)
                    && std::fs::symlink_metadata(&src)
                        .map(|m| m.is_file())
                        .unwrap_or(false);
                if !ok {
                    return Err(refuse(
                        &raw_name,
                        format!(
                            "hard link to '{}', which is not a file extracted inside the destination",
                            target.display()
                        ),
                    ));
                }
                std::fs::hard_link(&src, &dest)
                    .with_context(|| format!("linking {}", dest.display()))?;
                stats.hardlinks += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let create = || {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&dest)
                };
                let mut f = match create() {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        clear(&dest)?;
                        create()
                    }
                    r => r,
                }
                .with_context(|| format!("creating {}", dest.display()))?;
                loop {
                    let n = entry.read(&mut buf).with_context(|| {
                        format!("reading {} from the archive", raw_name.display())
                    })?;
                    if n == 0 {
                        break;
                    }
                    std::io::Write::write_all(&mut f, &buf[..n])
                        .with_context(|| format!("writing {}", dest.display()))?;
                    stats.bytes += n as u64;
                }
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(mode))?;
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))?;
                stats.files += 1;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(refuse(
                    &raw_name,
                    format!("unsupported entry type {other:?}"),
                ));
            }
        }
    }
    // No symlink may be left pointing outside (a later entry can change what an earlier link resolves to).
    for l in &links {
        if let Ok(real) = std::fs::canonicalize(l)
            && !real.starts_with(root)
        {
            let _ = std::fs::remove_file(l);
            let rel = l.strip_prefix(root).unwrap_or(l);
            return Err(refuse(rel, "this symlink resolves outside the destination"));
        }
    }
    for (d, mode, mtime) in dirs.into_iter().rev() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", d.display()))?;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
        if let Ok(f) = std::fs::File::open(&d) {
            let _ = f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t));
        }
    }
    Ok(stats)
}

fn set_symlink_mtime(path: &Path, mtime: u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: a valid NUL-terminated path and two timespecs; AT_SYMLINK_NOFOLLOW touches the link itself.
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
}
