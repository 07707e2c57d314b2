//! Layer compression on every core: the uncompressed tar is cut into fixed 1 MiB chunks, each
//! compressed on its own (rayon), and the pieces written in order. The bytes depend only on the
//! input, never on the number of threads.
//!
//! gzip is one member, as pigz writes it: each chunk is raw deflate ending in a sync flush
//! (byte-aligned, no back-reference into another chunk), then an empty final block, the CRC-32
//! of the whole input (combined from the chunks') and its length. zstd is a sequence of frames,
//! one per chunk (concatenated frames are one valid zstd stream). Between chunks the writer
//! asks its [`Stop`], so a cancelled run or a node past its `timeout` ends a layer mid-way.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;

use flate2::{Compress, FlushCompress, Status};

use hephy_os::stop::{Stop, Stopped};

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// gzip (`tar+gzip`), level 6, block-parallel.
    Gzip,
    /// zstd (`tar+zstd`), level 3, one frame per chunk.
    Zstd,
}

impl Codec {
    /// The OCI media type of a layer compressed so.
    pub fn media_type(self) -> &'static str {
        match self {
            Codec::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Codec::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Its name in the graph file (`gzip`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }
}

/// How one build writes its layers: the codec, and when to give up.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub codec: Codec,
    pub stop: Stop<'a>,
}

impl Settings<'static> {
    /// gzip, never stopped (tests, tools).
    pub fn gzip() -> Settings<'static> {
        Settings { codec: Codec::Gzip, stop: Stop::never() }
    }
}

/// Uncompressed bytes per chunk. Fixed: the output's bytes depend on it.
const CHUNK: usize = 1 << 20;
/// The gzip level (gzip's and pigz's default).
const GZIP_LEVEL: u32 = 6;
/// The zstd level (zstd's default).
const ZSTD_LEVEL: i32 = 3;
/// A gzip header with no name, no time, and "unknown" operating system.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// A final, empty, fixed-Huffman deflate block.
const DEFLATE_END: [u8; 2] = [0x03, 0x00];

/// One compressed chunk, and the CRC-32 of its input.
struct Piece {
    bytes: Vec<u8>,
    crc: crc32fast::Hasher,
}

/// A writer that compresses what it is given into `inner`, chunks in parallel.
pub struct Encoder<'s, W: Write> {
    codec: Codec,
    inner: W,
    stop: Stop<'s>,
    chunk: Vec<u8>,
    /// Chunks being compressed, in order.
    pending: VecDeque<mpsc::Receiver<io::Result<Piece>>>,
    /// The CRC-32 and length of the input so far (gzip's trailer).
    crc: crc32fast::Hasher,
    /// Whether any chunk was handed out (an empty input still makes one).
    started: bool,
}

impl<'s, W: Write> Encoder<'s, W> {
    /// An encoder writing into `inner`.
    pub fn new(inner: W, settings: Settings<'s>) -> io::Result<Encoder<'s, W>> {
        let mut inner = inner;
        if settings.codec == Codec::Gzip {
            inner.write_all(&GZIP_HEADER)?;
        }
        Ok(Encoder {
            codec: settings.codec,
            inner,
            stop: settings.stop,
            chunk: Vec::with_capacity(CHUNK),
            pending: VecDeque::new(),
            crc: crc32fast::Hasher::new(),
            started: false,
        })
    }

    /// Hands the current chunk to a compressing thread, and writes what is done.
    fn dispatch(&mut self) -> io::Result<()> {
        self.stop.check()?;
        self.started = true;
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        let (tx, rx) = mpsc::sync_channel(1);
        let codec = self.codec;
        rayon::spawn(move || {
            let _ = tx.send(compress(codec, &chunk));
        });
        self.pending.push_back(rx);
        // Enough in flight to keep every core busy; more only costs memory.
        let most = 2 * rayon::current_num_threads() + 1;
        while self.pending.len() > most {
            self.write_front(true)?;
        }
        while self.write_front(false)? {}
        Ok(())
    }

    /// Writes the oldest chunk if it is done (or, with `wait`, once it is); whether it did.
    fn write_front(&mut self, wait: bool) -> io::Result<bool> {
        let Some(rx) = self.pending.front() else { return Ok(false) };
        let piece = if wait {
            wait_for(rx)?
        } else {
            match rx.try_recv() {
                Ok(piece) => piece,
                Err(mpsc::TryRecvError::Empty) => return Ok(false),
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Err(io::Error::other("a compressing thread went away"));
                }
            }
        };
        self.pending.pop_front();
        let piece = piece?;
        self.inner.write_all(&piece.bytes)?;
        self.crc.combine(&piece.crc);
        Ok(true)
    }

    /// Compresses what is left, writes the end of the stream, and gives back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.chunk.is_empty() || !self.started {
            self.dispatch()?;
        }
        while !self.pending.is_empty() {
            self.write_front(true)?;
        }
        if self.codec == Codec::Gzip {
            let crc = self.crc.clone();
            // ISIZE is the input's length modulo 2^32 (RFC 1952).
            #[expect(clippy::cast_possible_truncation, reason = "gzip keeps the length modulo 2^32")]
            let length = crc.total_len() as u32;
            self.inner.write_all(&DEFLATE_END)?;
            self.inner.write_all(&crc.finalize().to_le_bytes())?;
            self.inner.write_all(&length.to_le_bytes())?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Encoder<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.dispatch()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The chunk `rx` will bring. On a thread of a rayon pool (whose work may be queued behind
/// this very thread), run the pool's other work meanwhile instead of blocking it.
fn wait_for(rx: &mpsc::Receiver<io::Result<Piece>>) -> io::Result<io::Result<Piece>> {
    let gone = || io::Error::other("a compressing thread went away");
    loop {
        match rx.try_recv() {
            Ok(piece) => return Ok(piece),
            Err(mpsc::TryRecvError::Disconnected) => return Err(gone()),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        match rayon::yield_now() {
            None => return rx.recv().map_err(|_| gone()),
            Some(rayon::Yield::Executed) => {}
            Some(rayon::Yield::Idle) => match rx.recv_timeout(std::time::Duration::from_millis(1)) {
                Ok(piece) => return Ok(piece),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(gone()),
            },
        }
    }
}

/// Compresses one chunk on its own.
fn compress(codec: Codec, chunk: &[u8]) -> io::Result<Piece> {
    let mut crc = crc32fast::Hasher::new();
    let bytes = match codec {
        Codec::Gzip => {
            crc.update(chunk);
            deflate(chunk)?
        }
        Codec::Zstd => zstd::bulk::compress(chunk, ZSTD_LEVEL)?,
    };
    Ok(Piece { bytes, crc })
}

/// Raw deflate of `chunk`, ending in a sync flush (byte-aligned, not final).
fn deflate(chunk: &[u8]) -> io::Result<Vec<u8>> {
    let mut compress = Compress::new(flate2::Compression::new(GZIP_LEVEL), false);
    let mut out = Vec::with_capacity(chunk.len() / 2 + 64);
    loop {
        let read = usize::try_from(compress.total_in()).unwrap_or(usize::MAX).min(chunk.len());
        let status =
            compress.compress_vec(&chunk[read..], &mut out, FlushCompress::Sync).map_err(io::Error::other)?;
        let consumed = usize::try_from(compress.total_in()).unwrap_or(usize::MAX) >= chunk.len();
        // The flush is complete once deflate stops with output space to spare.
        if consumed && out.len() < out.capacity() && status != Status::BufError {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64 << 10));
    }
}

/// The [`Stopped`] an I/O error carries, however deep (the tar writer wraps its writer's errors).
pub fn stopped(error: &io::Error) -> Option<Stopped> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(e) = current {
        if let Some(stopped) = e.downcast_ref::<Stopped>() {
            return Some(*stopped);
        }
        current = e
            .downcast_ref::<io::Error>()
            .and_then(|inner| inner.get_ref().map(|e| e as _))
            .or_else(|| e.source());
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// 2.5 MiB that compress somewhat (text-like, with repeats across chunk boundaries).
    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let mut x: u32 = 7;
        while out.len() < 2 * CHUNK + CHUNK / 2 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let word = ["layer ", "tar ", "gzip ", "chunk ", "\n", "hephy "][(x >> 16) as usize % 6];
            out.extend_from_slice(word.as_bytes());
            out.push(b'a' + (x >> 24) as u8 % 26);
        }
        out
    }

    fn encode(codec: Codec, input: &[u8], threads: usize) -> Vec<u8> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut encoder = Encoder::new(Vec::new(), Settings { codec, stop: Stop::never() }).unwrap();
            // Uneven writes, as the tar writer makes them.
            for piece in input.chunks(70_001) {
                encoder.write_all(piece).unwrap();
            }
            encoder.finish().unwrap()
        })
    }

    #[test]
    fn the_bytes_do_not_depend_on_the_number_of_threads() {
        let input = sample();
        for codec in [Codec::Gzip, Codec::Zstd] {
            let one = encode(codec, &input, 1);
            assert_eq!(encode(codec, &input, 2), one, "{codec:?}: 2 threads");
            assert_eq!(encode(codec, &input, 5), one, "{codec:?}: 5 threads");
            assert!(one.len() < input.len() / 2, "{codec:?} compresses");
        }
    }

    #[test]
    fn gzip_is_one_member_any_reader_reads() {
        let input = sample();
        let bytes = encode(Codec::Gzip, &input, 3);
        // The single-member reader (which stops after the first member) reads it all.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
        assert!(out == input, "gzip round trip");
        let empty = encode(Codec::Gzip, &[], 2);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&empty[..]).read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn zstd_frames_read_as_one_stream() {
        let input = sample();
        let bytes = encode(Codec::Zstd, &input, 2);
        let out = zstd::stream::decode_all(&bytes[..]).unwrap();
        assert!(out == input, "zstd round trip");
        assert!(zstd::stream::decode_all(&encode(Codec::Zstd, &[], 1)[..]).unwrap().is_empty());
    }

    #[test]
    fn a_stop_ends_the_stream_between_chunks() {
        let cancel = AtomicBool::new(true);
        let settings = Settings { codec: Codec::Gzip, stop: Stop::after(&cancel, None) };
        let mut encoder = Encoder::new(Vec::new(), settings).unwrap();
        let error = encoder.write_all(&sample()).unwrap_err();
        assert_eq!(stopped(&error), Some(Stopped::Cancelled));
        let timed =
            Settings { codec: Codec::Zstd, stop: Stop::after(&cancel, Some(std::time::Duration::ZERO)) };
        cancel.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut encoder = Encoder::new(Vec::new(), timed).unwrap();
        let error = encoder.write_all(&sample()).unwrap_err();
        assert_eq!(stopped(&error), Some(Stopped::TimedOut(std::time::Duration::ZERO)));
    }
}
