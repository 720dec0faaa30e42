//! rpm's own "ndb" package database, `Packages.db` (openSUSE Leap 15.3+, Tumbleweed,
//! SLE 15 SP3+). Layout (rpm's lib/backend/ndb/rpmpkg.c, little-endian): a 32-byte
//! header (`RpmP`, version 0, generation, number of 4 KiB slot pages), then 16-byte
//! slots (`Slot`, package index, block offset, block count; index 0 = free) filling
//! the slot pages, then blobs at 16-byte block offsets: `BlbS`, package index,
//! generation, length, the header blob, and a tail. Debian's rpm is built without
//! ndb, so this reader is tested on bytes built to that layout.

// A parser of untrusted bytes: every index is checked (`get`), none may panic.
#![warn(clippy::indexing_slicing)]

const HEADER_MAGIC: u32 = u32::from_le_bytes(*b"RpmP");
const SLOT_MAGIC: u32 = u32::from_le_bytes(*b"Slot");
const BLOB_MAGIC: u32 = u32::from_le_bytes(*b"BlbS");
const PAGE: usize = 4096;
const SLOT: usize = 16;
const BLOCK: usize = 16;
const BLOB_HEAD: usize = 16;
/// The header takes the first two slots of the first page.
const FIRST_SLOT: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NdbError {
    #[error("not an rpm ndb database")]
    NotNdb,
    #[error("ndb version {0} is not supported (0 is)")]
    Version(u32),
    #[error("{pages} slot pages declared but the file holds {len} bytes")]
    SlotPages { pages: u32, len: usize },
    #[error("slot {0} is damaged")]
    Slot(usize),
    #[error("blob of package {pkg} is damaged: {what}")]
    Blob { pkg: u32, what: &'static str },
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Calls `each(blob)` for every package header in the database, in slot order.
pub fn for_each(bytes: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), NdbError> {
    if le32(bytes, 0) != Some(HEADER_MAGIC) {
        return Err(NdbError::NotNdb);
    }
    let version = le32(bytes, 4).ok_or(NdbError::NotNdb)?;
    if version != 0 {
        return Err(NdbError::Version(version));
    }
    let pages = le32(bytes, 12).ok_or(NdbError::NotNdb)?;
    let slots_end = (pages as usize)
        .checked_mul(PAGE)
        .filter(|&end| end > 0 && end <= bytes.len())
        .ok_or(NdbError::SlotPages {
            pages,
            len: bytes.len(),
        })?;
    for i in FIRST_SLOT..slots_end / SLOT {
        let at = i * SLOT;
        let field = |k: usize| le32(bytes, at + 4 * k).ok_or(NdbError::Slot(i));
        if field(0)? != SLOT_MAGIC {
            return Err(NdbError::Slot(i));
        }
        let pkg = field(1)?;
        if pkg == 0 {
            continue;
        }
        let (blkoff, blkcnt) = (field(2)? as usize, field(3)? as usize);
        let bad = |what| NdbError::Blob { pkg, what };
        // Blobs live after the slot pages, within the file, in whole blocks.
        let start = blkoff.checked_mul(BLOCK).ok_or(bad("offset overflows"))?;
        let end = blkcnt
            .checked_mul(BLOCK)
            .and_then(|n| start.checked_add(n))
            .ok_or(bad("size overflows"))?;
        if start < slots_end || end > bytes.len() || end - start < BLOB_HEAD {
            return Err(bad("blocks outside the blob area"));
        }
        let area = bytes
            .get(start..end)
            .ok_or(bad("blocks outside the blob area"))?;
        if le32(area, 0) != Some(BLOB_MAGIC) {
            return Err(bad("no blob magic"));
        }
        if le32(area, 4) != Some(pkg) {
            return Err(bad("blob belongs to another package"));
        }
        let len = le32(area, 12).ok_or(bad("short"))? as usize;
        let blob = BLOB_HEAD
            .checked_add(len)
            .and_then(|e| area.get(BLOB_HEAD..e))
            .ok_or(bad("length runs past its blocks"))?;
        each(blob);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An ndb file laid out as rpm writes one: one slot page, blobs in 16-byte blocks
    /// (head, data, padding, 12-byte tail).
    pub(crate) fn build(blobs: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0u8; PAGE];
        out[0..4].copy_from_slice(b"RpmP");
        out[12..16].copy_from_slice(&1u32.to_le_bytes());
        for i in FIRST_SLOT..PAGE / SLOT {
            out[i * SLOT..i * SLOT + 4].copy_from_slice(b"Slot");
        }
        for (n, blob) in blobs.iter().enumerate() {
            let pkg = n as u32 + 1;
            let blocks = (BLOB_HEAD + blob.len() + 12).div_ceil(BLOCK);
            let blkoff = out.len() / BLOCK;
            let slot = (FIRST_SLOT + n) * SLOT;
            out[slot + 4..slot + 8].copy_from_slice(&pkg.to_le_bytes());
            out[slot + 8..slot + 12].copy_from_slice(&(blkoff as u32).to_le_bytes());
            out[slot + 12..slot + 16].copy_from_slice(&(blocks as u32).to_le_bytes());
            let mut area = vec![0u8; blocks * BLOCK];
            area[0..4].copy_from_slice(b"BlbS");
            area[4..8].copy_from_slice(&pkg.to_le_bytes());
            area[12..16].copy_from_slice(&(blob.len() as u32).to_le_bytes());
            area[BLOB_HEAD..BLOB_HEAD + blob.len()].copy_from_slice(blob);
            let t = area.len() - 12;
            area[t + 4..t + 8].copy_from_slice(&(blob.len() as u32).to_le_bytes());
            area[t + 8..t + 12].copy_from_slice(b"BlbE");
            out.extend_from_slice(&area);
        }
        out
    }

    fn collect(db: &[u8]) -> Result<Vec<Vec<u8>>, NdbError> {
        let mut v = Vec::new();
        for_each(db, |b| v.push(b.to_vec()))?;
        Ok(v)
    }

    #[test]
    fn reads_blobs_in_slot_order() {
        let blobs = vec![vec![1u8; 100], vec![2u8; 5000], vec![3u8; 1]];
        assert_eq!(collect(&build(&blobs)).unwrap(), blobs);
        assert_eq!(collect(&build(&[])).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn hostile_files_are_errors() {
        let blobs = vec![vec![1u8; 100], vec![2u8; 5000]];
        let db = build(&blobs);
        assert_eq!(collect(b"RpmP"), Err(NdbError::NotNdb));
        assert_eq!(collect(&[0u8; 4096]), Err(NdbError::NotNdb));
        let mut b = db.clone();
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(collect(&b), Err(NdbError::SlotPages { .. })));
        let mut b = db.clone();
        b[12..16].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(collect(&b), Err(NdbError::SlotPages { .. })));
        // a slot whose blocks reach past the file, or back into the slot pages
        let slot = FIRST_SLOT * SLOT;
        for (field, value) in [(8, u32::MAX), (12, u32::MAX), (8, 1), (12, 0)] {
            let mut b = db.clone();
            b[slot + field..slot + field + 4].copy_from_slice(&value.to_le_bytes());
            assert!(
                matches!(collect(&b), Err(NdbError::Blob { .. })),
                "{field} {value}"
            );
        }
        // a blob length past its blocks
        let mut b = db.clone();
        b[PAGE + 12..PAGE + 16].copy_from_slice(&10_000u32.to_le_bytes());
        assert!(matches!(collect(&b), Err(NdbError::Blob { .. })));
        // truncations and flipped bytes: errors or other blobs, never a panic
        for n in (0..db.len()).step_by(61) {
            let _ = collect(&db[..n]);
        }
        for at in (0..db.len()).step_by(3) {
            let mut b = db.clone();
            b[at] ^= 0xc3;
            let _ = collect(&b);
        }
    }
}
