//! Blob bytes: memory-mapped committed blobs of containerd's content store, owned
//! bytes, or a buffered file (the fallback when mapping fails). The call to `mmap(2)` is
//! here, as a `pub(crate) unsafe fn` whose callers state its contract.

#![allow(unsafe_code)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The bytes of one blob, however they are held.
pub enum Blob {
    /// A read-only mapping of a committed, content-addressed blob file.
    Mapped(memmap2::Mmap),
    /// Bytes already in memory (e.g. streamed from containerd's content API).
    Bytes(Arc<[u8]>),
    /// A byte range of a file read with buffered I/O (OCI layouts, docker archives,
    /// and the fallback when a blob cannot be mapped).
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blob::Mapped(m) => write!(f, "Blob::Mapped({} bytes)", m.len()),
            Blob::Bytes(b) => write!(f, "Blob::Bytes({} bytes)", b.len()),
            Blob::File { path, offset, len } => {
                write!(f, "Blob::File({}@{offset}+{len})", path.display())
            }
        }
    }
}

impl Blob {
    /// Maps a committed blob of containerd's content store.
    ///
    /// # Safety
    ///
    /// The caller states, at each call, that `path` is a *committed* blob
    /// under `io.containerd.content.v1.content/blobs/<alg>/<hex>`, never a file under
    /// `ingest/`. containerd writes blobs in `ingest/`, then renames them into `blobs/`
    /// and never writes them again; deletion unlinks the file, which leaves an existing
    /// mapping intact. So the mapped bytes do not change and the file is not truncated
    /// underneath us (truncation would raise SIGBUS). The scan holds a containerd lease
    /// while it reads, so garbage collection does not race it either.
    pub(crate) unsafe fn map_committed(path: &Path) -> std::io::Result<Blob> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            // A zero-length mapping is an error on Linux; an empty blob is empty bytes.
            return Ok(Blob::Bytes(Arc::from(Vec::new())));
        }
        // SAFETY: per the contract above, the file is an immutable committed blob that
        // no process writes or truncates while mapped; the mapping is read-only and
        // is only ever read through `&[u8]` slices.
        let map = unsafe { memmap2::MmapOptions::new().map(&file)? };
        // The walk is sequential; tell the kernel so it reads ahead aggressively.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Blob::Mapped(map))
    }

    /// A whole file read with buffered I/O.
    pub fn file(path: &Path) -> std::io::Result<Blob> {
        let len = std::fs::metadata(path)?.len();
        Ok(Blob::File {
            path: path.to_path_buf(),
            offset: 0,
            len,
        })
    }

    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Blob {
        Blob::Bytes(bytes.into())
    }

    pub fn len(&self) -> u64 {
        match self {
            Blob::Mapped(m) => m.len() as u64,
            Blob::Bytes(b) => b.len() as u64,
            Blob::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A sequential reader over the blob.
    pub fn reader(&self) -> std::io::Result<BlobReader<'_>> {
        Ok(match self {
            Blob::Mapped(m) => BlobReader::Slice(&m[..]),
            Blob::Bytes(b) => BlobReader::Slice(&b[..]),
            Blob::File { path, offset, len } => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(*offset))?;
                BlobReader::File(f.take(*len))
            }
        })
    }

    /// Reads the whole blob into memory, refusing blobs over `max` bytes (manifests,
    /// configs: small documents whose size a hostile source could inflate).
    pub fn read_all(&self, max: u64) -> std::io::Result<Vec<u8>> {
        if self.len() > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("blob of {} bytes is over the {max} byte limit", self.len()),
            ));
        }
        let mut out = Vec::with_capacity(usize::try_from(self.len()).unwrap_or(0));
        self.reader()?.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// Sequential reader returned by [`Blob::reader`].
pub enum BlobReader<'a> {
    Slice(&'a [u8]),
    File(std::io::Take<File>),
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            BlobReader::Slice(s) => s.read(buf),
            BlobReader::File(f) => f.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_file_and_bytes_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("blob");
        std::fs::write(&p, b"hello blob").unwrap();
        // SAFETY: the test owns the file and neither writes nor truncates it while mapped.
        let mapped = unsafe { Blob::map_committed(&p) }.unwrap();
        for blob in [
            mapped,
            Blob::file(&p).unwrap(),
            Blob::from_bytes(b"hello blob".to_vec()),
        ] {
            assert_eq!(blob.len(), 10);
            assert_eq!(blob.read_all(100).unwrap(), b"hello blob");
            assert!(blob.read_all(5).is_err());
        }
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        // SAFETY: as above.
        assert!(unsafe { Blob::map_committed(&empty) }.unwrap().is_empty());
    }
}
