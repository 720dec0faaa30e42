//! Layer decompression: picks gzip / zstd / none from the media type (or the magic
//! bytes when the media type says nothing useful), inflates while hashing the
//! compressed bytes, and enforces the uncompressed-size limit.

use std::io::{BufRead, BufReader, Read};

use sha2::Digest as _;

use crate::digest::{Algorithm, Digest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Compression of a layer from its media type, with the first bytes as the tie
/// breaker: a known magic always wins (docker archives carry no media type, and
/// registries have been seen serving gzip under a `tar` media type).
pub fn detect(media_type: &str, head: &[u8]) -> Compression {
    if head.starts_with(&GZIP_MAGIC) {
        return Compression::Gzip;
    }
    if head.starts_with(&ZSTD_MAGIC) {
        return Compression::Zstd;
    }
    let mt = media_type.to_ascii_lowercase();
    if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") || mt.ends_with("tar.gz") {
        Compression::Gzip
    } else if mt.ends_with("+zstd") || mt.ends_with(".tar.zstd") {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Hashes every byte read through it (the blob digest, checked in the same pass).
pub struct HashingReader<R> {
    inner: R,
    hasher: BlobHasher,
    pub bytes: u64,
}

pub enum BlobHasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl BlobHasher {
    pub fn new(alg: Algorithm) -> BlobHasher {
        match alg {
            Algorithm::Sha256 => BlobHasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => BlobHasher::Sha512(sha2::Sha512::new()),
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            BlobHasher::Sha256(h) => h.update(b),
            BlobHasher::Sha512(h) => h.update(b),
        }
    }
    /// The `alg:hex` string of the bytes seen.
    pub fn finish(self) -> String {
        match self {
            BlobHasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            BlobHasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, alg: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: BlobHasher::new(alg),
            bytes: 0,
        }
    }

    /// Reads (and hashes) whatever is left, then returns the digest string and the
    /// total byte count.
    pub fn finish(mut self) -> std::io::Result<(String, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((self.hasher.finish(), self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = buf.get(..n) {
            self.hasher.update(b);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The decoder for one layer, kept concrete so the compressed reader can be taken
/// back out to finish hashing after the tar stream ends.
pub enum Inflate<R: BufRead> {
    Plain(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, R>>),
}

impl<R: BufRead> Inflate<R> {
    pub fn new(c: Compression, r: R) -> std::io::Result<Self> {
        Ok(match c {
            Compression::None => Inflate::Plain(r),
            Compression::Gzip => Inflate::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(r))),
            Compression::Zstd => {
                let mut d = zstd::stream::read::Decoder::with_buffer(r)?;
                // Layers are made with default windows; refuse the 2 GiB windows a
                // hostile frame could ask for (memory is allocated up front).
                d.window_log_max(27)?;
                Inflate::Zstd(Box::new(d))
            }
        })
    }

    pub fn into_inner(self) -> R {
        match self {
            Inflate::Plain(r) => r,
            Inflate::Gzip(d) => d.into_inner(),
            Inflate::Zstd(d) => d.finish(),
        }
    }
}

impl<R: BufRead> Read for Inflate<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Inflate::Plain(r) => r.read(buf),
            Inflate::Gzip(d) => d.read(buf),
            Inflate::Zstd(d) => d.read(buf),
        }
    }
}

/// How the decompression of one layer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateEnd {
    /// The compressed stream ended cleanly.
    Complete,
    /// The stream is corrupt or truncated (message from the decoder).
    Corrupt(String),
    /// More than `max` uncompressed bytes: stopped there.
    OverLimit { max: u64 },
    /// The consumer stopped reading (it hit a limit or the end of the tar).
    Abandoned,
}

/// Result of decompressing one blob: how inflate ended, and the digest of the
/// compressed bytes (every byte of the blob is hashed, whatever happened).
#[derive(Debug, Clone)]
pub struct InflateOutcome {
    pub end: InflateEnd,
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
    /// `alg:hex` of the blob bytes; `None` when the blob could not be read.
    pub blob_digest: Result<String, String>,
}

/// Decompresses `blob` (hashing it with `digest`'s algorithm), feeding output chunks
/// of up to `chunk` bytes (in buffers from `next_buf`, recycled by the consumer) to
/// `sink` until it returns `false`. Stops at `max_bytes` of
/// output. Always hashes the blob to its end.
pub fn inflate_blob(
    blob: impl Read,
    media_type: &str,
    digest: &Digest,
    max_bytes: u64,
    chunk: usize,
    mut sink: impl FnMut(Vec<u8>) -> bool,
    mut next_buf: impl FnMut() -> Vec<u8>,
) -> InflateOutcome {
    let hashing = HashingReader::new(blob, digest.algorithm());
    let mut compressed = BufReader::with_capacity(256 << 10, hashing);
    let head = match compressed.fill_buf() {
        Ok(h) => h.get(..4).unwrap_or(h).to_vec(),
        Err(e) => {
            return InflateOutcome {
                end: InflateEnd::Corrupt(format!("cannot read blob: {e}")),
                uncompressed_bytes: 0,
                compressed_bytes: 0,
                blob_digest: Err(e.to_string()),
            };
        }
    };
    let compression = detect(media_type, &head);
    let mut total: u64 = 0;
    let (end, compressed) = match Inflate::new(compression, compressed) {
        Err(e) => {
            // Only zstd decoder set-up can fail; nothing was consumed yet.
            let end = InflateEnd::Corrupt(format!("zstd decoder: {e}"));
            return InflateOutcome {
                end,
                uncompressed_bytes: 0,
                compressed_bytes: 0,
                blob_digest: Err("decoder set-up failed".into()),
            };
        }
        Ok(mut dec) => {
            let end = loop {
                let mut buf = next_buf();
                buf.resize(chunk, 0);
                let mut filled = 0;
                let mut eof = false;
                let mut err = None;
                while filled < chunk {
                    match dec.read(buf.get_mut(filled..).unwrap_or_default()) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                buf.truncate(filled);
                let over = total + filled as u64 > max_bytes;
                if over {
                    // Less than `filled`, a usize, whenever `over` holds.
                    buf.truncate(usize::try_from(max_bytes.saturating_sub(total)).unwrap_or(0));
                }
                total += buf.len() as u64;
                if !buf.is_empty() && !sink(buf) {
                    break InflateEnd::Abandoned;
                }
                if over {
                    break InflateEnd::OverLimit { max: max_bytes };
                }
                if let Some(e) = err {
                    break InflateEnd::Corrupt(e.to_string());
                }
                if eof {
                    break InflateEnd::Complete;
                }
            };
            (end, dec.into_inner())
        }
    };
    let (blob_digest, compressed_bytes) = match compressed.into_inner().finish() {
        Ok((d, n)) => (Ok(d), n),
        Err(e) => (Err(e.to_string()), 0),
    };
    InflateOutcome {
        end,
        uncompressed_bytes: total,
        compressed_bytes,
        blob_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn run(blob: &[u8], mt: &str, max: u64) -> (Vec<u8>, InflateOutcome) {
        let mut out = Vec::new();
        let d = Digest::sha256_of(blob);
        let o = inflate_blob(
            blob,
            mt,
            &d,
            max,
            1000,
            |c| {
                out.extend_from_slice(&c);
                true
            },
            Vec::new,
        );
        (out, o)
    }

    #[test]
    fn detects_by_magic_then_media_type() {
        assert_eq!(detect("", &[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            detect("application/vnd.oci.image.layer.v1.tar", &ZSTD_MAGIC),
            Compression::Zstd
        );
        assert_eq!(
            detect("application/vnd.docker.image.rootfs.diff.tar.gzip", b"xx"),
            Compression::Gzip
        );
        assert_eq!(
            detect("application/vnd.oci.image.layer.v1.tar+zstd", b"x"),
            Compression::Zstd
        );
        assert_eq!(detect("", b"ustar"), Compression::None);
    }

    #[test]
    fn inflates_multi_member_gzip_and_zstd_and_hashes() {
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut two = gz(&data[..1000]);
        two.extend(gz(&data[1000..]));
        let (out, o) = run(&two, "", u64::MAX);
        assert_eq!(out, data);
        assert_eq!(o.end, InflateEnd::Complete);
        assert_eq!(o.blob_digest.unwrap(), Digest::sha256_of(&two).to_string());
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let (out, o) = run(&z, "", u64::MAX);
        assert_eq!(out, data);
        assert_eq!(o.compressed_bytes, z.len() as u64);
    }

    #[test]
    fn truncated_streams_are_corrupt_and_still_hashed() {
        let data = vec![7u8; 100_000];
        let g = gz(&data);
        let cut = &g[..g.len() / 2];
        let (_, o) = run(cut, "", u64::MAX);
        assert!(matches!(o.end, InflateEnd::Corrupt(_)), "{:?}", o.end);
        assert_eq!(o.blob_digest.unwrap(), Digest::sha256_of(cut).to_string());
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let (_, o) = run(&z[..z.len() - 3], "", u64::MAX);
        assert!(matches!(o.end, InflateEnd::Corrupt(_)), "{:?}", o.end);
    }

    #[test]
    fn stops_at_the_output_limit() {
        let data = vec![0u8; 1 << 20];
        let g = gz(&data);
        let (out, o) = run(&g, "", 5000);
        assert_eq!(out.len(), 5000);
        assert_eq!(o.end, InflateEnd::OverLimit { max: 5000 });
        assert_eq!(o.compressed_bytes, g.len() as u64);
    }
}
