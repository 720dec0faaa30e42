//! One rpm header as the package database stores it: the "blob" form, without the
//! 8-byte magic of headers in .rpm files. Big-endian throughout:
//! `il: u32, dl: u32, il × (tag: u32, type: u32, offset: u32, count: u32), data[dl]`.
//! Every offset and count comes from the image and is checked before use.

// A parser of untrusted bytes: every index is checked (`get`), none may panic.
#![warn(clippy::indexing_slicing)]

use std::borrow::Cow;

/// rpm's own sanity limits (`hdrchkTags`, `hdrchkData` in lib/header.c): a header past
/// them is rejected by rpm too.
const MAX_TAGS: u32 = 0xffff;
const MAX_DATA: u32 = 0x0fff_ffff;
const ENTRY: usize = 16;

pub const NAME: u32 = 1000;
pub const VERSION: u32 = 1001;
pub const RELEASE: u32 = 1002;
pub const EPOCH: u32 = 1003;
pub const LICENSE: u32 = 1014;
pub const ARCH: u32 = 1022;
pub const SOURCERPM: u32 = 1044;
pub const DIRINDEXES: u32 = 1116;
pub const BASENAMES: u32 = 1117;
pub const DIRNAMES: u32 = 1118;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("database record holds no header blob")]
    NotBlob,
    #[error("tag {0} is missing")]
    Missing(u32),
    #[error("header is {0} bytes, shorter than its own length fields")]
    Truncated(usize),
    #[error("header declares {0} tags (rpm allows at most 65535)")]
    TooManyTags(u32),
    #[error("header declares {0} data bytes (rpm allows at most 256 MiB)")]
    DataTooLarge(u32),
    #[error("header declares {need} bytes but has {have}")]
    Short { need: usize, have: usize },
    #[error("tag {tag}: type {kind} is not the type rpm stores it as")]
    WrongType { tag: u32, kind: u32 },
    #[error("tag {tag}: offset {offset} count {count} lies outside the data store")]
    OutOfRange { tag: u32, offset: u32, count: u32 },
    #[error("tag {tag}: string is not terminated inside the data store")]
    Unterminated { tag: u32 },
    #[error("tag {tag}: index {index} refers past the {len} directory names")]
    BadDirIndex { tag: u32, index: u32, len: usize },
    #[error("tag {tag}: {found} entries where {expected} were expected")]
    CountMismatch {
        tag: u32,
        found: usize,
        expected: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u32,
    kind: u32,
    offset: u32,
    count: u32,
}

/// A checked view of one header blob.
pub struct Header<'a> {
    index: &'a [u8],
    store: &'a [u8],
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

impl<'a> Header<'a> {
    pub fn parse(blob: &'a [u8]) -> Result<Header<'a>, HeaderError> {
        let (Some(il), Some(dl)) = (be32(blob, 0), be32(blob, 4)) else {
            return Err(HeaderError::Truncated(blob.len()));
        };
        if il > MAX_TAGS {
            return Err(HeaderError::TooManyTags(il));
        }
        if dl > MAX_DATA {
            return Err(HeaderError::DataTooLarge(dl));
        }
        // Both bounded above, so this cannot overflow even on 32-bit targets.
        let index_len = il as usize * ENTRY;
        let need = 8 + index_len + dl as usize;
        if blob.len() < need {
            return Err(HeaderError::Short {
                need,
                have: blob.len(),
            });
        }
        let short = HeaderError::Short {
            need,
            have: blob.len(),
        };
        Ok(Header {
            index: blob.get(8..8 + index_len).ok_or(short.clone())?,
            store: blob.get(8 + index_len..need).ok_or(short)?,
        })
    }

    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.index.chunks_exact(ENTRY).filter_map(|e| {
            Some(Entry {
                tag: be32(e, 0)?,
                kind: be32(e, 4)?,
                offset: be32(e, 8)?,
                count: be32(e, 12)?,
            })
        })
    }

    fn find(&self, tag: u32) -> Option<Entry> {
        self.entries().find(|e| e.tag == tag)
    }

    /// Bytes from an entry's offset to the end of the store.
    fn tail_at(&self, e: Entry) -> Result<&'a [u8], HeaderError> {
        self.store
            .get(e.offset as usize..)
            .filter(|s| !s.is_empty())
            .ok_or(HeaderError::OutOfRange {
                tag: e.tag,
                offset: e.offset,
                count: e.count,
            })
    }

    /// A STRING (or the first of an I18NSTRING) tag; `Ok(None)` when absent.
    pub fn string(&self, tag: u32) -> Result<Option<Cow<'a, str>>, HeaderError> {
        let Some(e) = self.find(tag) else {
            return Ok(None);
        };
        if e.kind != TYPE_STRING && e.kind != TYPE_I18NSTRING && e.kind != TYPE_STRING_ARRAY {
            return Err(HeaderError::WrongType { tag, kind: e.kind });
        }
        let s = self.tail_at(e)?;
        let end = memchr::memchr(0, s).ok_or(HeaderError::Unterminated { tag })?;
        Ok(Some(String::from_utf8_lossy(
            s.get(..end).unwrap_or_default(),
        )))
    }

    /// A STRING_ARRAY tag (empty when absent). At most one string per data byte, so
    /// an absurd count runs out of data, not memory.
    pub fn strings(&self, tag: u32) -> Result<Vec<Cow<'a, str>>, HeaderError> {
        let Some(e) = self.find(tag) else {
            return Ok(Vec::new());
        };
        if e.kind != TYPE_STRING_ARRAY {
            return Err(HeaderError::WrongType { tag, kind: e.kind });
        }
        let mut s = self.tail_at(e)?;
        if e.count as usize > s.len() {
            return Err(HeaderError::OutOfRange {
                tag,
                offset: e.offset,
                count: e.count,
            });
        }
        let mut out = Vec::with_capacity(e.count as usize);
        for _ in 0..e.count {
            let end = memchr::memchr(0, s).ok_or(HeaderError::Unterminated { tag })?;
            out.push(String::from_utf8_lossy(s.get(..end).unwrap_or_default()));
            s = s.get(end + 1..).unwrap_or_default();
        }
        Ok(out)
    }

    /// An INT32 array tag (empty when absent).
    pub fn int32s(&self, tag: u32) -> Result<Vec<u32>, HeaderError> {
        let Some(e) = self.find(tag) else {
            return Ok(Vec::new());
        };
        if e.kind != TYPE_INT32 {
            return Err(HeaderError::WrongType { tag, kind: e.kind });
        }
        let out_of_range = HeaderError::OutOfRange {
            tag,
            offset: e.offset,
            count: e.count,
        };
        let len = (e.count as usize)
            .checked_mul(4)
            .ok_or(out_of_range.clone())?;
        let start = e.offset as usize;
        let bytes = start
            .checked_add(len)
            .and_then(|end| self.store.get(start..end))
            .ok_or(out_of_range)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap_or_default()))
            .collect())
    }

    /// The first value of an INT32 tag.
    pub fn int32(&self, tag: u32) -> Result<Option<u32>, HeaderError> {
        let Some(e) = self.find(tag) else {
            return Ok(None);
        };
        if e.kind != TYPE_INT32 {
            return Err(HeaderError::WrongType { tag, kind: e.kind });
        }
        let v = be32(self.store, e.offset as usize).filter(|_| e.count > 0);
        v.map(Some).ok_or(HeaderError::OutOfRange {
            tag,
            offset: e.offset,
            count: e.count,
        })
    }

    /// Owned paths for which `keep(dir, base)` holds, from the compressed file list
    /// (BASENAMES[i] in DIRNAMES[DIRINDEXES[i]]).
    pub fn files_where(
        &self,
        keep: impl Fn(&str, &str) -> bool,
    ) -> Result<Vec<String>, HeaderError> {
        let bases = self.strings(BASENAMES)?;
        if bases.is_empty() {
            return Ok(Vec::new());
        }
        let dirs = self.strings(DIRNAMES)?;
        let idx = self.int32s(DIRINDEXES)?;
        if idx.len() != bases.len() {
            return Err(HeaderError::CountMismatch {
                tag: DIRINDEXES,
                found: idx.len(),
                expected: bases.len(),
            });
        }
        let mut out = Vec::new();
        for (base, &i) in bases.iter().zip(&idx) {
            let dir = dirs.get(i as usize).ok_or(HeaderError::BadDirIndex {
                tag: DIRINDEXES,
                index: i,
                len: dirs.len(),
            })?;
            if keep(dir, base) {
                out.push(format!("{dir}{base}"));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a header blob from (tag, type, data) entries, as rpm lays them out.
    pub(crate) fn build(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut store = Vec::new();
        for (tag, kind, count, data) in entries {
            if *kind == TYPE_INT32 {
                while store.len() % 4 != 0 {
                    store.push(0);
                }
            }
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&kind.to_be_bytes());
            index.extend_from_slice(&(store.len() as u32).to_be_bytes());
            index.extend_from_slice(&count.to_be_bytes());
            store.extend_from_slice(data);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&((entries.len()) as u32).to_be_bytes());
        out.extend_from_slice(&(store.len() as u32).to_be_bytes());
        out.extend_from_slice(&index);
        out.extend_from_slice(&store);
        out
    }

    pub(crate) fn s(v: &str) -> (u32, Vec<u8>) {
        let mut b = v.as_bytes().to_vec();
        b.push(0);
        (1, b)
    }

    pub(crate) fn sa(v: &[&str]) -> (u32, Vec<u8>) {
        let mut b = Vec::new();
        for x in v {
            b.extend_from_slice(x.as_bytes());
            b.push(0);
        }
        (v.len() as u32, b)
    }

    pub(crate) fn i32s(v: &[u32]) -> (u32, Vec<u8>) {
        (
            v.len() as u32,
            v.iter().flat_map(|x| x.to_be_bytes()).collect(),
        )
    }

    pub(crate) fn entry(
        tag: u32,
        kind: u32,
        (count, data): (u32, Vec<u8>),
    ) -> (u32, u32, u32, Vec<u8>) {
        (tag, kind, count, data)
    }

    pub(crate) fn sample() -> Vec<u8> {
        build(&[
            entry(NAME, TYPE_STRING, s("openssl-libs")),
            entry(EPOCH, TYPE_INT32, i32s(&[1])),
            entry(VERSION, TYPE_STRING, s("3.0.7")),
            entry(RELEASE, TYPE_STRING, s("27.el9")),
            entry(ARCH, TYPE_STRING, s("x86_64")),
            entry(LICENSE, TYPE_STRING, s("ASL 2.0")),
            entry(SOURCERPM, TYPE_STRING, s("openssl-3.0.7-27.el9.src.rpm")),
            entry(DIRINDEXES, TYPE_INT32, i32s(&[0, 1, 1])),
            entry(
                BASENAMES,
                TYPE_STRING_ARRAY,
                sa(&["libssl.so.3", "six-1.15.0.dist-info", "METADATA"]),
            ),
            entry(
                DIRNAMES,
                TYPE_STRING_ARRAY,
                sa(&["/usr/lib64/", "/usr/lib/python3.9/site-packages/"]),
            ),
        ])
    }

    #[test]
    fn reads_tags() {
        let blob = sample();
        let h = Header::parse(&blob).unwrap();
        assert_eq!(h.string(NAME).unwrap().as_deref(), Some("openssl-libs"));
        assert_eq!(h.int32(EPOCH).unwrap(), Some(1));
        assert_eq!(h.string(9999).unwrap(), None);
        assert_eq!(h.int32s(DIRINDEXES).unwrap(), [0, 1, 1]);
        let files = h.files_where(|_, b| b.ends_with(".dist-info")).unwrap();
        assert_eq!(
            files,
            ["/usr/lib/python3.9/site-packages/six-1.15.0.dist-info"]
        );
    }

    #[test]
    fn hostile_headers_are_errors() {
        let blob = sample();
        // every truncation fails cleanly
        for n in 0..blob.len() {
            assert!(Header::parse(&blob[..n]).is_err(), "truncated to {n}");
        }
        // absurd counts
        let mut b = blob.clone();
        b[..4].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        assert_eq!(
            Header::parse(&b).err(),
            Some(HeaderError::TooManyTags(0x1_0000))
        );
        let mut b = blob.clone();
        b[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Header::parse(&b).err(),
            Some(HeaderError::DataTooLarge(u32::MAX))
        );
        // an offset past the store, for each entry
        let tags = [
            NAME, EPOCH, VERSION, RELEASE, ARCH, LICENSE, SOURCERPM, DIRINDEXES, BASENAMES,
            DIRNAMES,
        ];
        for (i, tag) in tags.into_iter().enumerate() {
            let mut b = blob.clone();
            let at = 8 + i * ENTRY + 8;
            b[at..at + 4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
            let h = Header::parse(&b).unwrap();
            let failed = match tag {
                EPOCH => h.int32(tag).is_err(),
                DIRINDEXES => h.int32s(tag).is_err(),
                BASENAMES | DIRNAMES => h.strings(tag).is_err(),
                _ => h.string(tag).is_err(),
            };
            assert!(failed, "tag {tag}");
            assert!(tag != BASENAMES || h.files_where(|_, _| true).is_err());
        }
        // absurd array counts: BASENAMES is entry 8, DIRINDEXES entry 7
        for (entry, count) in [(8usize, u32::MAX), (7, u32::MAX), (7, 0x4000_0000)] {
            let mut b = blob.clone();
            let at = 8 + entry * ENTRY + 12;
            b[at..at + 4].copy_from_slice(&count.to_be_bytes());
            let h = Header::parse(&b).unwrap();
            assert!(
                h.files_where(|_, _| true).is_err(),
                "entry {entry} count {count}"
            );
        }
        // a directory index past DIRNAMES
        let b = build(&[
            entry(DIRINDEXES, TYPE_INT32, i32s(&[7])),
            entry(BASENAMES, TYPE_STRING_ARRAY, sa(&["x"])),
            entry(DIRNAMES, TYPE_STRING_ARRAY, sa(&["/"])),
        ]);
        assert!(matches!(
            Header::parse(&b).unwrap().files_where(|_, _| true),
            Err(HeaderError::BadDirIndex { index: 7, .. })
        ));
        // a string without its NUL at the end of the store
        let b = build(&[(NAME, TYPE_STRING, 1, b"abc".to_vec())]);
        assert_eq!(
            Header::parse(&b).unwrap().string(NAME).err(),
            Some(HeaderError::Unterminated { tag: NAME })
        );
        // wrong types
        let b = build(&[entry(EPOCH, TYPE_STRING, s("1"))]);
        assert!(Header::parse(&b).unwrap().int32(EPOCH).is_err());
    }
}
