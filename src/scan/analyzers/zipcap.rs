//! Bounds on a zip archive's central directory, checked on the raw bytes BEFORE
//! `zip::ZipArchive::new` is called.
//!
//! `ZipArchive::new` parses the whole central directory into memory (a few hundred
//! bytes per entry on top of its name) before any caller can look at `len()`: a
//! `.jar`/`.egg` of millions of empty members costs memory many times its size. This
//! module reads what the archive *declares* — the End Of Central Directory record and,
//! when it points to one, the ZIP64 locator and ZIP64 end record (APPNOTE 6.3.10,
//! 4.3.14–4.3.16) — bounds-checked, and refuses archives over the caps below.
//!
//! The zip crate (2.x) does not only use the last end record: it searches the whole
//! buffer backwards for the signature and, when one candidate's directory fails to
//! parse, falls back to the next earlier one. So every end record in the buffer is
//! checked (an attacker's big directory behind a small broken trailer is still seen),
//! the number of candidates is bounded, and so is the sum of their declared entries
//! (the crate's worst case is parsing each of them in turn). Stored nested archives
//! (fat jars keep `BOOT-INF/lib/*.jar` uncompressed) contribute their own end records:
//! the caps leave room for them.

use std::fmt;

/// Entries one central directory may declare (matches the jar walk's member cap).
pub const MAX_ENTRIES: u64 = 100_000;
/// Bytes one central directory may declare (100k entries with 300-byte names).
pub const MAX_DIRECTORY_BYTES: u64 = 32 << 20;
/// End-of-central-directory signatures in one buffer (the outer archive's, stored
/// nested archives', chance matches in compressed data).
pub const MAX_END_RECORDS: usize = 4096;
/// Entries declared by all end records of one buffer together.
pub const MAX_TOTAL_ENTRIES: u64 = 1_000_000;

const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
const LOCATOR_SIG: &[u8; 4] = b"PK\x06\x07";
const EOCD64_SIG: &[u8; 4] = b"PK\x06\x06";
const EOCD_LEN: usize = 22;
const LOCATOR_LEN: usize = 20;
const EOCD64_LEN: usize = 56;

/// What one end record declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directory {
    /// Entries (the larger of "on this disk" and "total").
    pub entries: u64,
    /// Central directory size in bytes.
    pub size: u64,
    /// Where the end record starts in the buffer.
    pub end_record: usize,
    /// Whether the counts came from a ZIP64 end record.
    pub zip64: bool,
}

/// Why an archive is not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    TooManyEntries(u64),
    DirectoryTooLarge(u64),
    TooManyEndRecords,
    TooManyEntriesInAll(u64),
    /// A ZIP64 locator whose end record is not where it says (the crate would search
    /// the buffer for one: refused rather than guessed).
    Zip64EndRecordMissing,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::TooManyEntries(n) => write!(
                f,
                "zip central directory declares {n} entries, over the {MAX_ENTRIES} limit"
            ),
            Refused::DirectoryTooLarge(n) => write!(
                f,
                "zip central directory declares {n} bytes, over the {MAX_DIRECTORY_BYTES} byte limit"
            ),
            Refused::TooManyEndRecords => write!(
                f,
                "zip holds over {MAX_END_RECORDS} end-of-central-directory records"
            ),
            Refused::TooManyEntriesInAll(n) => write!(
                f,
                "zip end-of-central-directory records declare {n} entries in all, over the {MAX_TOTAL_ENTRIES} limit"
            ),
            Refused::Zip64EndRecordMissing => {
                write!(
                    f,
                    "zip64 end-of-central-directory record not where its locator says"
                )
            }
        }
    }
}

impl std::error::Error for Refused {}

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]) as u64)
}

fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?) as u64)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

/// The end record starting at `pos` (its signature already matched), as the zip crate
/// would read it: `Ok(None)` for one the crate skips (truncated, comment running past
/// the end, ZIP64 locator pointing forward or to several disks).
pub fn end_record_at(bytes: &[u8], pos: usize) -> Result<Option<Directory>, Refused> {
    let (Some(this_disk), Some(total), Some(size), Some(offset), Some(comment)) = (
        u16_at(bytes, pos + 8),
        u16_at(bytes, pos + 10),
        u32_at(bytes, pos + 12),
        u32_at(bytes, pos + 16),
        u16_at(bytes, pos + 20),
    ) else {
        return Ok(None);
    };
    if pos as u64 + EOCD_LEN as u64 + comment > bytes.len() as u64 {
        return Ok(None);
    }
    let zip32 = Directory {
        entries: this_disk.max(total),
        size,
        end_record: pos,
        zip64: false,
    };
    // 4.3.16: 0xFFFF / 0xFFFFFFFF mean "see the ZIP64 record" (the crate looks when
    // the count or the offset is saturated).
    if total != 0xFFFF && offset != 0xFFFF_FFFF {
        return Ok(Some(zip32));
    }
    // 4.3.15: the locator sits right before the end record.
    let Some(locator) = pos.checked_sub(LOCATOR_LEN) else {
        return Ok(Some(zip32));
    };
    if bytes.get(locator..locator + 4) != Some(LOCATOR_SIG) {
        return Ok(Some(zip32));
    }
    let (Some(eocd64), Some(disks)) = (u64_at(bytes, locator + 8), u32_at(bytes, locator + 16))
    else {
        return Ok(Some(zip32));
    };
    if eocd64 >= locator as u64 || disks > 1 {
        return Ok(None);
    }
    // 4.3.14: the ZIP64 end record, whose "size of record" (excluding the first 12
    // bytes) must reach the locator exactly (the crate's consistency check).
    let Ok(eocd64) = usize::try_from(eocd64) else {
        return Ok(None);
    };
    let record = bytes.get(eocd64..locator).filter(|r| {
        r.len() >= EOCD64_LEN
            && r.starts_with(EOCD64_SIG)
            && u64_at(r, 4).and_then(|s| s.checked_add(12)) == Some(r.len() as u64)
    });
    let Some(r) = record else {
        return Err(Refused::Zip64EndRecordMissing);
    };
    let (Some(this_disk), Some(total), Some(size)) = (u64_at(r, 24), u64_at(r, 32), u64_at(r, 40))
    else {
        return Err(Refused::Zip64EndRecordMissing);
    };
    Ok(Some(Directory {
        entries: this_disk.max(total),
        size,
        end_record: pos,
        zip64: true,
    }))
}

/// The last end record the crate would try first (`None`: not a zip), after checking
/// that no end record in the buffer declares more than the caps allow. Call before
/// `ZipArchive::new` and do not open a refused archive.
pub fn check(bytes: &[u8]) -> Result<Option<Directory>, Refused> {
    let mut last = None;
    let mut total: u64 = 0;
    for (n, pos) in memchr::memmem::rfind_iter(bytes, EOCD_SIG).enumerate() {
        if n >= MAX_END_RECORDS {
            return Err(Refused::TooManyEndRecords);
        }
        let Some(d) = end_record_at(bytes, pos)? else {
            continue;
        };
        if d.entries > MAX_ENTRIES {
            return Err(Refused::TooManyEntries(d.entries));
        }
        if d.size > MAX_DIRECTORY_BYTES {
            return Err(Refused::DirectoryTooLarge(d.size));
        }
        total += d.entries;
        if total > MAX_TOTAL_ENTRIES {
            return Err(Refused::TooManyEntriesInAll(total));
        }
        last.get_or_insert(d);
    }
    Ok(last)
}

/// `ZipArchive::new` over `bytes` once [`check`] passes; `Err(None)` when the crate
/// cannot read it, `Err(Some(_))` when it was refused unopened.
pub fn open(bytes: &[u8]) -> Result<zip::ZipArchive<std::io::Cursor<&[u8]>>, Option<Refused>> {
    check(bytes).map_err(Some)?;
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|_| None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};
    use zip::write::SimpleFileOptions;

    fn zip_of(n: usize, comment: Option<&str>, zip64: bool) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(zip64);
        for i in 0..n {
            w.start_file(format!("f{i}"), opts).unwrap();
            w.write_all(b"x").unwrap();
        }
        if let Some(c) = comment {
            w.set_comment(c);
        }
        w.finish().unwrap().into_inner()
    }

    fn eocd_pos(b: &[u8]) -> usize {
        memchr::memmem::rfind(b, EOCD_SIG).unwrap()
    }

    #[test]
    fn normal_zip() {
        let z = zip_of(3, None, false);
        let d = check(&z).unwrap().unwrap();
        assert_eq!((d.entries, d.zip64, d.end_record), (3, false, z.len() - 22));
        assert!(d.size > 0 && d.size < 200);
        assert_eq!(open(&z).unwrap().len(), 3);
        // Empty archive.
        let e = zip_of(0, None, false);
        assert_eq!(check(&e).unwrap().unwrap().entries, 0);
    }

    #[test]
    fn comment_padded() {
        let comment = "c".repeat(60_000) + "PK\x05\x06 in the comment";
        let z = zip_of(2, Some(&comment), false);
        let d = check(&z).unwrap().unwrap();
        // The signature inside the comment is not a readable end record (its comment
        // length runs past the end); the real one is found.
        assert_eq!(d.entries, 2);
        assert_eq!(d.end_record, z.len() - 22 - comment.len());
    }

    #[test]
    fn zip64_records_are_read() {
        let z = zip_of(2, None, true);
        let d = check(&z).unwrap().unwrap();
        assert_eq!(d.entries, 2);
        // Force the ZIP64 path: saturate the 32-bit count, add a locator and record.
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..70_000u32 {
            w.start_file(format!("{i:x}"), SimpleFileOptions::default())
                .unwrap();
        }
        let big = w.finish().unwrap().into_inner();
        let p = eocd_pos(&big);
        assert_eq!(&big[p - LOCATOR_LEN..p - LOCATOR_LEN + 4], LOCATOR_SIG);
        let d = end_record_at(&big, p).unwrap().unwrap();
        assert_eq!((d.entries, d.zip64), (70_000, true));
        assert_eq!(check(&big).unwrap().unwrap().entries, 70_000);
        // A declared count over the cap in the ZIP64 record.
        let mut lie = big.clone();
        let rec = u64_at(&lie, p - LOCATOR_LEN + 8).unwrap() as usize;
        lie[rec + 32..rec + 40].copy_from_slice(&5_000_000u64.to_le_bytes());
        assert_eq!(check(&lie), Err(Refused::TooManyEntries(5_000_000)));
        // A locator pointing at nothing.
        let mut lost = big.clone();
        lost[rec] = b'X';
        assert_eq!(check(&lost), Err(Refused::Zip64EndRecordMissing));
        // Declared directory size over the cap.
        let mut wide = big;
        wide[rec + 40..rec + 48].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert_eq!(check(&wide), Err(Refused::DirectoryTooLarge(1 << 40)));
    }

    #[test]
    fn truncated() {
        let z = zip_of(3, None, false);
        for cut in [0, 1, 4, z.len() - 22, z.len() - 10, z.len() - 1] {
            // Never a panic; the partial end record is not read.
            let r = check(&z[..cut]).unwrap();
            assert!(r.is_none(), "cut at {cut}: {r:?}");
        }
        // Locator and ZIP64 record cut off: the 32-bit record is all there is.
        let mut sat = zip_of(1, None, false);
        let p = eocd_pos(&sat);
        sat[p + 10..p + 12].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(check(&sat).unwrap().unwrap().entries, 0xFFFF);
        assert!(check(&sat[p..]).unwrap().is_some());
    }

    #[test]
    fn declared_count_lies() {
        let z = zip_of(3, None, false);
        let p = eocd_pos(&z);
        let mut lie = z.clone();
        lie[p + 8..p + 12].copy_from_slice(&[0x10, 0x27, 0x10, 0x27]); // 10000
        assert_eq!(check(&lie).unwrap().unwrap().entries, 10_000);
        lie[p + 12..p + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            check(&lie),
            Err(Refused::DirectoryTooLarge(u32::MAX as u64))
        );
    }

    #[test]
    fn a_small_trailer_does_not_hide_a_big_directory() {
        // A big archive, then a broken small end record after it: the crate would
        // fall back to the big one when the small one fails.
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..150_000u32 {
            w.start_file(format!("{i:x}"), SimpleFileOptions::default())
                .unwrap();
        }
        let mut b = w.finish().unwrap().into_inner();
        b.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0\x2e\0\0\0\0\0\0\0\0\0");
        assert_eq!(check(&b), Err(Refused::TooManyEntries(150_000)));
        // Many end records, each declaring a full 32-bit count.
        let rec = b"PK\x05\x06\0\0\0\0\xfe\xff\xfe\xff\0\0\0\0\0\0\0\0\0\0";
        let many = rec.repeat(20);
        assert_eq!(check(&many), Err(Refused::TooManyEntriesInAll(16 * 0xFFFE)));
        let noise = b"PK\x05\x06".repeat(MAX_END_RECORDS + 1);
        assert_eq!(check(&noise), Err(Refused::TooManyEndRecords));
    }
}
