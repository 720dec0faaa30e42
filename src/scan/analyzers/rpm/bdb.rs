//! A reader of the Berkeley DB hash format, as far as rpm's `Packages` file (RHEL/CentOS
//! 7 and 8, Amazon Linux 2) needs it: every key/data pair of every hash page, with
//! data on overflow pages reassembled. Written by hand because no maintained crate
//! reads BDB files without linking Oracle's libdb (AGPL since 6.0, absent on nodes);
//! the format is small, and reading pages in file order needs none of the hash
//! function or bucket arithmetic. Every number comes from the image and is checked.

/// Page layout constants (db_page.h).
const META_MAGIC_HASH: u32 = 0x0006_1561;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
/// Size of the generic page header (`PAGE`); item offsets (`inp[]`) follow it.
const PAGE_HEADER: usize = 26;
const DBMETA_CHKSUM: u8 = 0x01;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BdbError {
    #[error("file of {0} bytes is too small for a Berkeley DB database")]
    TooSmall(usize),
    #[error("not a Berkeley DB hash database (magic {0:#x})")]
    NotHash(u32),
    #[error("Berkeley DB hash version {0} is not supported (8 and 9 are)")]
    Version(u32),
    #[error("page size {0} is not a power of two between 512 and 65536")]
    PageSize(u32),
    #[error("database is encrypted")]
    Encrypted,
    #[error("database has page checksums, which rpm never writes")]
    Checksummed,
    #[error("meta page says {pages} pages but the file holds {have}")]
    Truncated { pages: u64, have: u64 },
    #[error("page {page}: {what}")]
    BadPage { page: u64, what: &'static str },
    #[error("page {page}: item type {kind} is not used by rpm's database")]
    ItemType { page: u64, kind: u8 },
    #[error("overflow chain from page {page}: {what}")]
    Overflow { page: u64, what: &'static str },
}

#[derive(Clone, Copy)]
struct Order {
    big: bool,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let s = b.get(at..at + 2)?;
        let a = [s[0], s[1]];
        Some(if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }
    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let s = b.get(at..at + 4)?;
        let a = [s[0], s[1], s[2], s[3]];
        Some(if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }
}

/// Calls `each(key, data)` for every pair in the database, in page order. Keys are
/// passed as stored (rpm: the header number, host byte order); the byte order of the
/// file is `big_endian` of the result.
pub fn for_each(bytes: &[u8], mut each: impl FnMut(&[u8], &[u8], bool)) -> Result<(), BdbError> {
    if bytes.len() < 512 {
        return Err(BdbError::TooSmall(bytes.len()));
    }
    let le = Order { big: false };
    let be = Order { big: true };
    let order = match (le.u32(bytes, 12), be.u32(bytes, 12)) {
        (Some(META_MAGIC_HASH), _) => le,
        (_, Some(META_MAGIC_HASH)) => be,
        (m, _) => return Err(BdbError::NotHash(m.unwrap_or_default())),
    };
    let bad_meta = |what| BdbError::BadPage { page: 0, what };
    let version = order.u32(bytes, 16).ok_or(bad_meta("short"))?;
    if !(8..=9).contains(&version) {
        return Err(BdbError::Version(version));
    }
    let page_size = order.u32(bytes, 20).ok_or(bad_meta("short"))?;
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(BdbError::PageSize(page_size));
    }
    if bytes.get(24).copied().unwrap_or_default() != 0 {
        return Err(BdbError::Encrypted);
    }
    if bytes.get(25).copied() != Some(P_HASHMETA) {
        return Err(bad_meta("not a hash meta page"));
    }
    if bytes.get(26).copied().unwrap_or_default() & DBMETA_CHKSUM != 0 {
        return Err(BdbError::Checksummed);
    }
    let last_pgno = order.u32(bytes, 32).ok_or(bad_meta("short"))?;
    let ps = page_size as usize;
    let pages = u64::from(last_pgno) + 1;
    let have = (bytes.len() / ps) as u64;
    if pages > have {
        return Err(BdbError::Truncated { pages, have });
    }
    // `pages` ≤ `have`, which fits in usize.
    let pages = usize::try_from(pages).unwrap_or(0);
    let page = |n: usize| bytes.get(n * ps..(n + 1) * ps);
    // An overflow page belongs to one item: a page met twice is a loop or a forgery
    // that would otherwise cost quadratic work.
    let mut seen_overflow = vec![false; pages];
    let mut value = Vec::new();
    for n in 1..pages {
        let Some(pg) = page(n) else { break };
        let kind = pg.get(25).copied().unwrap_or_default();
        if kind != P_HASH && kind != P_HASH_UNSORTED {
            continue;
        }
        let bad = |what| BdbError::BadPage {
            page: n as u64,
            what,
        };
        let entries = usize::from(order.u16(pg, 20).ok_or(bad("short"))?);
        if entries % 2 != 0 {
            return Err(bad("odd number of items on a hash page"));
        }
        let index_end = PAGE_HEADER + 2 * entries;
        if index_end > ps {
            return Err(bad("item index runs past the page"));
        }
        // Items sit at the page's end, each from its offset up to the previous item's.
        let offset = |i: usize| -> Result<usize, BdbError> {
            let o = usize::from(order.u16(pg, PAGE_HEADER + 2 * i).ok_or(bad("short"))?);
            if o < index_end || o >= ps {
                return Err(bad("item offset outside the page's data area"));
            }
            Ok(o)
        };
        let item_end =
            |i: usize| -> Result<usize, BdbError> { if i == 0 { Ok(ps) } else { offset(i - 1) } };
        for pair in 0..entries / 2 {
            let (k, d) = (2 * pair, 2 * pair + 1);
            let (ko, kend) = (offset(k)?, item_end(k)?);
            if pg.get(ko) != Some(&H_KEYDATA) || kend <= ko {
                return Err(bad("key is not an on-page item"));
            }
            let key = &pg[ko + 1..kend];
            let (dof, dend) = (offset(d)?, item_end(d)?);
            if dend <= dof {
                return Err(bad("items overlap"));
            }
            match pg[dof] {
                H_KEYDATA => each(key, &pg[dof + 1..dend], order.big),
                H_OFFPAGE => {
                    let (Some(first), Some(total)) =
                        (order.u32(pg, dof + 4), order.u32(pg, dof + 8))
                    else {
                        return Err(bad("short off-page item"));
                    };
                    read_overflow(
                        &page,
                        pages,
                        order,
                        first,
                        total,
                        &mut seen_overflow,
                        &mut value,
                    )?;
                    each(key, &value, order.big);
                }
                other => {
                    return Err(BdbError::ItemType {
                        page: n as u64,
                        kind: other,
                    });
                }
            }
        }
    }
    Ok(())
}

fn read_overflow<'a>(
    page: &impl Fn(usize) -> Option<&'a [u8]>,
    pages: usize,
    order: Order,
    first: u32,
    total: u32,
    seen: &mut [bool],
    out: &mut Vec<u8>,
) -> Result<(), BdbError> {
    let err = |what| BdbError::Overflow {
        page: u64::from(first),
        what,
    };
    let total = total as usize;
    // No allocation from `total`: the chain visits each page once at most, so the
    // value never outgrows the file, and an absurd length ends at the chain's end.
    out.clear();
    let mut cur = first as usize;
    while out.len() < total {
        if cur == 0 || cur >= pages {
            return Err(err("chain ends early or leaves the file"));
        }
        let Some(slot) = seen.get_mut(cur) else {
            return Err(err("chain leaves the file"));
        };
        if *slot {
            return Err(err("page used twice (loop or shared chain)"));
        }
        *slot = true;
        let pg = page(cur).ok_or(err("chain leaves the file"))?;
        if pg.get(25) != Some(&P_OVERFLOW) {
            return Err(err("chain reaches a page that is not an overflow page"));
        }
        // On overflow pages `hf_offset` holds the number of bytes used.
        let len = usize::from(order.u16(pg, 22).ok_or(err("short page"))?);
        let data = pg
            .get(PAGE_HEADER..PAGE_HEADER + len)
            .ok_or(err("page claims more bytes than it holds"))?;
        out.extend_from_slice(data);
        cur = order.u32(pg, 16).ok_or(err("short page"))? as usize;
    }
    if out.len() != total {
        return Err(err("chain holds more bytes than declared"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a little-endian hash database the way Berkeley DB lays one out: meta
    /// page, hash pages (pairs packed from the page end), overflow chains for values
    /// that do not fit a quarter page.
    pub(crate) fn build(ps: usize, pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut pages: Vec<Vec<u8>> = vec![vec![0; ps]];
        let new_page = |pages: &mut Vec<Vec<u8>>, kind: u8| {
            let mut p = vec![0u8; ps];
            let n = pages.len() as u32;
            p[8..12].copy_from_slice(&n.to_le_bytes());
            p[25] = kind;
            pages.push(p);
            pages.len() - 1
        };
        let mut hash = new_page(&mut pages, P_HASH);
        let mut items: Vec<Vec<u8>> = Vec::new();
        let flush = |pages: &mut Vec<Vec<u8>>, hash: usize, items: &mut Vec<Vec<u8>>| {
            let p = &mut pages[hash];
            p[20..22].copy_from_slice(&(items.len() as u16).to_le_bytes());
            let mut end = ps;
            for (i, it) in items.iter().enumerate() {
                let start = end - it.len();
                p[start..end].copy_from_slice(it);
                p[PAGE_HEADER + 2 * i..PAGE_HEADER + 2 * i + 2]
                    .copy_from_slice(&(start as u16).to_le_bytes());
                end = start;
            }
            items.clear();
        };
        for (k, v) in pairs {
            let mut key = vec![H_KEYDATA];
            key.extend_from_slice(k);
            let data = if v.len() + 1 > ps / 4 {
                // overflow chain
                let chunk = ps - PAGE_HEADER;
                let mut first = 0u32;
                let mut prev: Option<usize> = None;
                for c in v.chunks(chunk) {
                    let n = new_page(&mut pages, P_OVERFLOW);
                    pages[n][22..24].copy_from_slice(&(c.len() as u16).to_le_bytes());
                    pages[n][PAGE_HEADER..PAGE_HEADER + c.len()].copy_from_slice(c);
                    match prev {
                        Some(p) => pages[p][16..20].copy_from_slice(&(n as u32).to_le_bytes()),
                        None => first = n as u32,
                    }
                    prev = Some(n);
                }
                let mut d = vec![H_OFFPAGE, 0, 0, 0];
                d.extend_from_slice(&first.to_le_bytes());
                d.extend_from_slice(&(v.len() as u32).to_le_bytes());
                d
            } else {
                let mut d = vec![H_KEYDATA];
                d.extend_from_slice(v);
                d
            };
            let used: usize = items.iter().map(Vec::len).sum();
            if PAGE_HEADER + 2 * (items.len() + 2) + used + key.len() + data.len() > ps {
                flush(&mut pages, hash, &mut items);
                hash = new_page(&mut pages, P_HASH);
            }
            items.push(key);
            items.push(data);
        }
        flush(&mut pages, hash, &mut items);
        let last = (pages.len() - 1) as u32;
        let meta = &mut pages[0];
        meta[12..16].copy_from_slice(&META_MAGIC_HASH.to_le_bytes());
        meta[16..20].copy_from_slice(&9u32.to_le_bytes());
        meta[20..24].copy_from_slice(&(ps as u32).to_le_bytes());
        meta[25] = P_HASHMETA;
        meta[32..36].copy_from_slice(&last.to_le_bytes());
        pages.concat()
    }

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    fn collect(db: &[u8]) -> Result<Pairs, BdbError> {
        let mut out = Vec::new();
        for_each(db, |k, v, _| out.push((k.to_vec(), v.to_vec())))?;
        Ok(out)
    }

    fn sample() -> (Vec<u8>, Pairs) {
        let pairs: Pairs = (0u32..12)
            .map(|i| {
                let len = if i % 3 == 0 { 1500 + i as usize } else { 20 };
                (i.to_le_bytes().to_vec(), vec![i as u8; len])
            })
            .collect();
        (build(512, &pairs), pairs)
    }

    #[test]
    fn reads_inline_and_overflow_values() {
        let (db, pairs) = sample();
        assert_eq!(collect(&db).unwrap(), pairs);
    }

    #[test]
    fn hostile_pages_are_errors() {
        let (db, _) = sample();
        // every truncation: an error (or, cut at a page boundary past the last page
        // the meta page names, the same content), never a panic
        for n in (0..db.len()).step_by(7) {
            let _ = collect(&db[..n]);
        }
        assert!(matches!(
            collect(&db[..db.len() - 512]),
            Err(BdbError::Truncated { .. })
        ));
        // garbage meta
        let mut b = db.clone();
        b[12] ^= 0xff;
        assert!(matches!(collect(&b), Err(BdbError::NotHash(_))));
        let mut b = db.clone();
        b[20..24].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(collect(&b).err(), Some(BdbError::PageSize(1000)));
        let mut b = db.clone();
        b[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(collect(&b), Err(BdbError::Truncated { .. })));
        let mut b = db.clone();
        b[24] = 1;
        assert_eq!(collect(&b).err(), Some(BdbError::Encrypted));
        // every byte of every page flipped in turn: errors or other values, no panic
        for at in 512..db.len() {
            let mut b = db.clone();
            b[at] ^= 0xa5;
            let _ = collect(&b);
        }
        // an overflow chain that loops back on itself
        let pairs = vec![(1u32.to_le_bytes().to_vec(), vec![7u8; 2000])];
        let mut b = build(512, &pairs);
        // pages: 0 meta, 1 hash, 2.. overflow; point the 3rd overflow page back at the 1st
        b[4 * 512 + 16..4 * 512 + 20].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(collect(&b), Err(BdbError::Overflow { .. })));
        // an item count far past the page
        let mut b = db.clone();
        b[512 + 20..512 + 22].copy_from_slice(&0xfffeu16.to_le_bytes());
        assert!(matches!(collect(&b), Err(BdbError::BadPage { .. })));
        // an off-page item claiming 4 GiB
        let mut b = build(512, &pairs);
        let d = u16::from_le_bytes([b[512 + 28], b[512 + 29]]) as usize;
        b[512 + d + 8..512 + d + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(collect(&b), Err(BdbError::Overflow { .. })));
    }
}
