//! A zstd writer that ends a frame whenever asked (`cut`), between tar entries, so that every entry lies
//! wholly within one frame and can be decompressed from that frame alone. Concatenated frames are one
//! valid zstd stream (`zstd -d` reads them as a whole). The compression context is reused from frame to
//! frame, multithreaded or not.

use std::io::{self, Write};

use zstd::stream::raw::{CParameter, Encoder, Operation};
use zstd::stream::zio;

/// A finished frame: its compressed offset and length, and the uncompressed offset of its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub foff: u64,
    pub flen: u64,
    pub fupos: u64,
}

/// Counts the compressed bytes passed on, which give the frames' offsets.
struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub struct Frames<W: Write> {
    /// Always Some between calls; taken only while a frame is being ended.
    enc: Option<zio::Writer<Counted<W>, Encoder<'static>>>,
    upos: u64,
    fupos: u64,
    foff: u64,
    frames: u64,
}

impl<W: Write> Frames<W> {
    /// `workers` > 0: zstd compresses on that many threads of its own (each frame still ends where cut).
    pub fn new(w: W, level: i32, workers: u32) -> io::Result<Frames<W>> {
        let mut op = Encoder::new(level)?;
        if workers > 0 {
            op.set_parameter(CParameter::NbWorkers(workers))?;
        }
        Ok(Frames {
            enc: Some(zio::Writer::new(Counted { inner: w, n: 0 }, op)),
            upos: 0,
            fupos: 0,
            foff: 0,
            frames: 0,
        })
    }

    fn enc(&mut self) -> &mut zio::Writer<Counted<W>, Encoder<'static>> {
        self.enc.as_mut().expect("frame encoder present")
    }

    /// Uncompressed bytes written so far: the offset of what is written next in the tar stream.
    pub fn upos(&self) -> u64 {
        self.upos
    }

    /// Uncompressed bytes in the open frame.
    pub fn open_len(&self) -> u64 {
        self.upos - self.fupos
    }

    /// Ends the open frame (nothing when it is empty); the next write starts a new one.
    pub fn cut(&mut self) -> io::Result<Option<Frame>> {
        if self.open_len() == 0 {
            return Ok(None);
        }
        let mut zw = self.enc.take().expect("frame encoder present");
        zw.finish()?;
        let (w, mut op) = zw.into_inner();
        let frame = Frame {
            foff: self.foff,
            flen: w.n - self.foff,
            fupos: self.fupos,
        };
        // Same parameters, new frame.
        op.reinit()?;
        self.foff = w.n;
        self.fupos = self.upos;
        self.frames += 1;
        self.enc = Some(zio::Writer::new(w, op));
        Ok(Some(frame))
    }

    /// Ends the open frame and returns the writer, the last frame and how many frames were written.
    pub fn finish(mut self) -> io::Result<(W, Option<Frame>, u64)> {
        let last = self.cut()?;
        let zw = self.enc.take().expect("frame encoder present");
        let (w, _) = zw.into_inner();
        Ok((w.inner, last, self.frames))
    }
}

impl<W: Write> Write for Frames<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.enc().write(buf)?;
        self.upos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        // A zstd flush would end a block early for nothing: the frames end at cuts.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32)
            .map(|i| ((i.wrapping_add(seed)).wrapping_mul(2654435761) >> 20) as u8)
            .collect()
    }

    #[test]
    fn every_frame_decodes_alone_and_all_decode_together() {
        for workers in [0, 2] {
            let mut f = Frames::new(Vec::new(), 1, workers).unwrap();
            let mut plain = Vec::new();
            let mut frames = Vec::new();
            for (i, n) in [10usize, 3 << 20, 0, 700_000, 1].into_iter().enumerate() {
                let d = data(n, i as u32);
                assert_eq!(f.upos(), plain.len() as u64);
                f.write_all(&d).unwrap();
                plain.extend_from_slice(&d);
                frames.extend(f.cut().unwrap());
            }
            f.write_all(b"tail").unwrap();
            plain.extend_from_slice(b"tail");
            let (out, last, count) = f.finish().unwrap();
            frames.extend(last);
            assert_eq!(count, 5, "the empty write made no frame");
            assert_eq!(frames.len(), 5);
            let mut end = 0;
            for (k, fr) in frames.iter().enumerate() {
                assert_eq!(fr.foff, end, "frames are contiguous");
                end = fr.foff + fr.flen;
                let one = zstd::decode_all(&out[fr.foff as usize..end as usize]).unwrap();
                let next = frames
                    .get(k + 1)
                    .map(|n| n.fupos as usize)
                    .unwrap_or(plain.len());
                assert_eq!(one, &plain[fr.fupos as usize..next], "frame {k} alone");
            }
            assert_eq!(end, out.len() as u64);
            assert_eq!(zstd::decode_all(&out[..]).unwrap(), plain);
        }
    }
}
