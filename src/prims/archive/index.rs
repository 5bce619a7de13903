//! The index of an indexed archive: zstd-compressed JSON lines, a header line then one line per tar entry
//! in archive order. A file's line says where its tar entry lies (the object, the zstd frame holding it,
//! the entry's offset in the tar stream), so a restore reads only the frames it needs, and its stat fields
//! let the next snapshot tell an unchanged file from a changed one without reading it.

use std::io::{BufRead, BufReader, Read, Write};

use anyhow::{Context, bail};
use globset::GlobMatcher;
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "rewind-index/1";

/// The first line: what the index describes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Header {
    pub format: String,
    /// The store key of the archive written with this index.
    pub object: String,
    /// The frame size the archive was cut at (uncompressed bytes).
    pub frame: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: String,
    #[serde(flatten)]
    pub kind: Kind,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Kind {
    Dir { mode: u32, mtime: i64 },
    Symlink { link: String, mtime: i64 },
    File(FileEntry),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub size: u64,
    pub mode: u32,
    pub mtime: i64,
    pub mtime_ns: i64,
    pub ino: u64,
    pub ctime: i64,
    pub ctime_ns: i64,
    pub sha256: String,
    #[serde(flatten)]
    pub loc: Location,
}

/// Where a file's tar entry lies.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Location {
    /// The key of the archive holding it (this snapshot's, or an ancestor's for an unchanged file).
    pub obj: String,
    /// Compressed offset and length of the zstd frame holding the entry.
    pub foff: u64,
    pub flen: u64,
    /// Uncompressed offset of that frame's start in the tar stream.
    pub fupos: u64,
    /// Uncompressed offset of the entry's first header (a GNU long-name header when there is one).
    pub tpos: u64,
}

impl FileEntry {
    /// Whether the file on disk is the one the parent archived: every stat field that a write, a
    /// replacement or a chmod changes is equal.
    pub fn same_stat(&self, other: &FileEntry) -> bool {
        self.size == other.size
            && self.mtime == other.mtime
            && self.mtime_ns == other.mtime_ns
            && self.mode == other.mode
            && self.ino == other.ino
            && self.ctime == other.ctime
            && self.ctime_ns == other.ctime_ns
    }
}

/// Writes an index: `zstd(header line, entry lines...)`.
pub struct IndexWriter<W: Write> {
    enc: zstd::Encoder<'static, W>,
    line: Vec<u8>,
}

impl<W: Write> IndexWriter<W> {
    pub fn new(w: W, header: &Header) -> anyhow::Result<IndexWriter<W>> {
        // Level 3: the index is small next to the archive, and read often (ls, diff, restores).
        let mut iw = IndexWriter {
            enc: zstd::Encoder::new(w, 3)?,
            line: Vec::with_capacity(512),
        };
        iw.line(header)?;
        Ok(iw)
    }

    fn line<T: Serialize>(&mut self, v: &T) -> anyhow::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, v)?;
        self.line.push(b'\n');
        self.enc.write_all(&self.line)?;
        Ok(())
    }

    pub fn entry(&mut self, e: &Entry) -> anyhow::Result<()> {
        self.line(e)
    }

    pub fn finish(self) -> anyhow::Result<W> {
        Ok(self.enc.finish()?)
    }
}

/// Reads an index: its header, then its entries one at a time (the index is never held whole).
pub struct IndexReader<R: Read> {
    lines: BufReader<zstd::Decoder<'static, BufReader<R>>>,
    buf: String,
    n: u64,
}

impl<R: Read> IndexReader<R> {
    pub fn open(r: R) -> anyhow::Result<(Header, IndexReader<R>)> {
        let dec = zstd::Decoder::new(r).context("reading the index (zstd)")?;
        let mut ir = IndexReader {
            lines: BufReader::with_capacity(256 * 1024, dec),
            buf: String::new(),
            n: 0,
        };
        let Some(line) = ir.next_line()? else {
            bail!("the index is empty (no header line)");
        };
        let header: Header =
            serde_json::from_str(line).context("the index's first line is not its header")?;
        if header.format != FORMAT {
            bail!("the index's format is '{}', not '{FORMAT}'", header.format);
        }
        Ok((header, ir))
    }

    fn next_line(&mut self) -> anyhow::Result<Option<&str>> {
        loop {
            self.buf.clear();
            let n = self
                .lines
                .read_line(&mut self.buf)
                .context("reading the index")?;
            if n == 0 {
                return Ok(None);
            }
            self.n += 1;
            if !self.buf.trim().is_empty() {
                return Ok(Some(self.buf.trim_end()));
            }
        }
    }

    /// The next entry, or None at the end.
    pub fn next_entry(&mut self) -> anyhow::Result<Option<Entry>> {
        let Some(line) = self.next_line()? else {
            return Ok(None);
        };
        let e = serde_json::from_str(line);
        e.map(Some)
            .with_context(|| format!("the index's line {} is not an entry", self.n))
    }
}

impl<R: Read> Iterator for IndexReader<R> {
    type Item = anyhow::Result<Entry>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}

/// A `path=` selection: "" and "." select everything; "./a/b/" is "a/b".
pub fn normalize(path: &str) -> String {
    let p = path.trim_end_matches('/');
    let p = p.strip_prefix("./").unwrap_or(p);
    if p == "." {
        String::new()
    } else {
        p.to_string()
    }
}

/// Whether `path` is `sel` or lies under it (`sel` normalized; empty selects everything).
pub fn selected(path: &str, sel: &str) -> bool {
    sel.is_empty()
        || path == sel
        || (path.len() > sel.len() && path.starts_with(sel) && path.as_bytes()[sel.len()] == b'/')
}

/// Whether directory `dir` is a proper ancestor of `path` (a flat archive's root "." is everyone's).
pub fn ancestor(dir: &str, path: &str) -> bool {
    dir == "." || (dir != path && selected(path, dir))
}

/// The entries under `path` matching `glob`, for browsing (`tar.index`).
pub fn read_entries(
    r: impl Read,
    path: Option<&str>,
    glob: Option<&GlobMatcher>,
) -> anyhow::Result<(Header, Vec<Entry>)> {
    let sel = path.map(normalize).unwrap_or_default();
    let (header, entries) = IndexReader::open(r)?;
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        if selected(&e.path, &sel) && glob.is_none_or(|g| g.is_match(&e.path)) {
            out.push(e);
        }
    }
    Ok((header, out))
}

/// What `read_entries` would return, counted: regular files and their bytes, directories, symlinks.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub files: u64,
    pub bytes: u64,
    pub dirs: u64,
    pub symlinks: u64,
}

pub fn summarize(
    r: impl Read,
    path: Option<&str>,
    glob: Option<&GlobMatcher>,
) -> anyhow::Result<(Header, Summary)> {
    let sel = path.map(normalize).unwrap_or_default();
    let (header, entries) = IndexReader::open(r)?;
    let mut s = Summary::default();
    for e in entries {
        let e = e?;
        if !(selected(&e.path, &sel) && glob.is_none_or(|g| g.is_match(&e.path))) {
            continue;
        }
        match &e.kind {
            Kind::File(f) => {
                s.files += 1;
                s.bytes += f.size;
            }
            Kind::Dir { .. } => s.dirs += 1,
            Kind::Symlink { .. } => s.symlinks += 1,
        }
    }
    Ok((header, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::File(FileEntry {
                size: 10,
                mode: 0o644,
                mtime: 1,
                mtime_ns: 2,
                ino: 3,
                ctime: 4,
                ctime_ns: 5,
                sha256: "ab".repeat(32),
                loc: Location {
                    obj: "o".into(),
                    foff: 6,
                    flen: 7,
                    fupos: 8,
                    tpos: 9,
                },
            }),
        }
    }

    #[test]
    fn lines_have_the_documented_shape() {
        let d = Entry {
            path: "a".into(),
            kind: Kind::Dir {
                mode: 0o755,
                mtime: 1,
            },
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"path":"a","type":"dir","mode":493,"mtime":1}"#
        );
        let s = Entry {
            path: "l".into(),
            kind: Kind::Symlink {
                link: "a".into(),
                mtime: 1,
            },
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"path":"l","type":"symlink","link":"a","mtime":1}"#
        );
        let f = serde_json::to_value(file("a/f")).unwrap();
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "path", "type", "size", "mode", "mtime", "mtime_ns", "ino", "ctime", "ctime_ns",
                "sha256", "obj", "foff", "flen", "fupos", "tpos"
            ]
        );
    }

    #[test]
    fn round_trip_and_filters() {
        let header = Header {
            format: FORMAT.into(),
            object: "d/x.tar.zst".into(),
            frame: 1 << 20,
        };
        let mut w = IndexWriter::new(Vec::new(), &header).unwrap();
        let dir = Entry {
            path: "a".into(),
            kind: Kind::Dir {
                mode: 0o755,
                mtime: -5,
            },
        };
        for e in [&dir, &file("a/x.log"), &file("a/y"), &file("ab")] {
            w.entry(e).unwrap();
        }
        let bytes = w.finish().unwrap();
        let (h, all) = read_entries(&bytes[..], None, None).unwrap();
        assert_eq!(h, header);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], dir);
        assert_eq!(all[1], file("a/x.log"));
        let (_, under) = read_entries(&bytes[..], Some("./a/"), None).unwrap();
        let names: Vec<&str> = under.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["a", "a/x.log", "a/y"]);
        let g = globset::Glob::new("*.log").unwrap().compile_matcher();
        let (_, logs) = read_entries(&bytes[..], None, Some(&g)).unwrap();
        assert_eq!(logs.len(), 1);
    }

    #[test]
    fn bad_indexes_are_refused() {
        let other =
            zstd::encode_all(&b"{\"format\":\"x\",\"object\":\"o\",\"frame\":1}\n"[..], 1).unwrap();
        let err = IndexReader::open(&other[..]).err().unwrap().to_string();
        assert!(err.contains("format is 'x'"), "{err}");
        assert!(IndexReader::open(&b"not zstd"[..]).is_err());
        let bad = zstd::encode_all(
            &b"{\"format\":\"rewind-index/1\",\"object\":\"o\",\"frame\":1}\n{\"path\":1}\n"[..],
            1,
        )
        .unwrap();
        let (_, mut r) = IndexReader::open(&bad[..]).unwrap();
        let err = format!("{:#}", r.next_entry().unwrap_err());
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn selection() {
        assert!(selected("a/b", ""));
        assert!(selected("a/b", "a"));
        assert!(!selected("ab", "a"));
        assert!(selected("a", "a"));
        assert!(ancestor(".", "a/b"));
        assert!(ancestor("a", "a/b"));
        assert!(!ancestor("a/b", "a/b"));
        assert!(!ancestor("a/bc", "a/b"));
        assert_eq!(normalize("./a/b/"), "a/b");
        assert_eq!(normalize("."), "");
    }
}
