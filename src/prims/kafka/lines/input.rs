//! The input of `send_lines`: gzip or zstd are recognised by their magic bytes (`compression = "auto"`),
//! or forced with `compression = "gzip" | "zstd" | "none"`; decompression runs on its own thread. The
//! decompressed input is read as lines, blank lines skipped, each numbered as in the input.

use std::io::{BufRead, BufReader, Read};

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Compression {
    Auto,
    Gzip,
    Zstd,
    None,
}

/// Wraps the raw input in a decompressor chosen by magic bytes or by `compression`.
pub(super) fn decoder(
    raw: Box<dyn Read + Send>,
    c: Compression,
) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut buf = BufReader::with_capacity(256 * 1024, raw);
    let c = if c == Compression::Auto {
        let head = buf.fill_buf()?;
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    } else {
        c
    };
    // Decompression runs on its own thread, overlapping with line checks and enqueueing (as `zcat |`).
    const CHUNK: usize = 256 * 1024;
    Ok(match c {
        Compression::Gzip => Box::new(crate::base::stream::read_ahead(
            flate2::bufread::MultiGzDecoder::new(buf),
            CHUNK,
            8,
        )),
        Compression::Zstd => Box::new(crate::base::stream::read_ahead(
            zstd::stream::read::Decoder::with_buffer(buf)?,
            CHUNK,
            8,
        )),
        _ => Box::new(buf),
    })
}

/// Lines of the decompressed input: `next` fills `line` (without the line end) and returns its number.
pub(super) struct LineSource {
    pub(super) input: Box<dyn BufRead + Send>,
    pub(super) number: u64,
    pub(super) label: String,
}

impl LineSource {
    pub(super) fn next(&mut self, line: &mut Vec<u8>) -> anyhow::Result<Option<u64>> {
        loop {
            line.clear();
            let n = self
                .input
                .read_until(b'\n', line)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", self.label))?;
            if n == 0 {
                return Ok(None);
            }
            self.number += 1;
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Ok(Some(self.number));
        }
    }
}
