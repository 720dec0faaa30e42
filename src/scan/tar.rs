//! A hand-written tar header walker over a buffered byte stream: ustar, PAX (`x`)
//! and GNU long names/links (`L`/`K`), base-256 sizes, checksum verified on every
//! header. Entry contents are streamed to the caller or skipped without copying.

use std::io::BufRead;

const BLOCK: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Regular,
    Hardlink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
    /// A type we do not interpret (its data, if any, is skipped).
    Other(u8),
}

impl EntryKind {
    /// Types whose header is never followed by data, whatever `size` says
    /// (as Go's archive/tar and GNU tar read them).
    fn header_only(self) -> bool {
        matches!(
            self,
            EntryKind::Hardlink
                | EntryKind::Symlink
                | EntryKind::CharDevice
                | EntryKind::BlockDevice
                | EntryKind::Directory
                | EntryKind::Fifo
        )
    }
}

/// One archive member, metadata only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// The path as the archive spells it (PAX/GNU long name applied), not normalized.
    pub path: String,
    /// Target of a symlink or hardlink.
    pub link: Option<String>,
    pub kind: EntryKind,
    pub mode: u32,
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TarError {
    #[error("archive ends inside {0}")]
    Truncated(&'static str),
    #[error("header at offset {offset} has a bad checksum")]
    BadChecksum { offset: u64 },
    #[error("header at offset {offset} has an unreadable {field} field")]
    BadNumber { offset: u64, field: &'static str },
    #[error("entry at offset {offset} declares {size} bytes, over the {max} byte layer limit")]
    EntryTooLarge { offset: u64, size: u64, max: u64 },
    #[error("{what} record at offset {offset} has {size} bytes, over the {max} byte limit")]
    MetadataTooLarge {
        what: &'static str,
        offset: u64,
        size: u64,
        max: u64,
    },
    #[error("PAX record at offset {offset} is malformed")]
    BadPax { offset: u64 },
    #[error("read error: {0}")]
    Io(String),
}

impl TarError {
    /// Limit errors become `LimitExceeded` findings, the rest `Malformed`.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            TarError::EntryTooLarge { .. } | TarError::MetadataTooLarge { .. }
        )
    }
}

/// Sequential reader of tar headers.
pub struct TarWalker<R> {
    r: R,
    /// Offset of the next unread byte in the tar stream.
    pos: u64,
    /// Content bytes of the current entry not yet consumed.
    remaining: u64,
    /// Padding after the current entry's content.
    padding: u64,
    max_entry: u64,
    max_meta: u64,
    /// True once the end-of-archive block was seen.
    pub finished: bool,
}

impl<R: BufRead> TarWalker<R> {
    /// `max_entry`: largest entry size accepted (the layer limit); `max_meta`: largest
    /// PAX / GNU long-name record read into memory.
    pub fn new(r: R, max_entry: u64, max_meta: u64) -> Self {
        TarWalker {
            r,
            pos: 0,
            remaining: 0,
            padding: 0,
            max_entry,
            max_meta,
            finished: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.r
    }

    /// Bytes of tar stream consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Skips `n` bytes without copying. Returns false at EOF.
    fn skip(&mut self, mut n: u64) -> Result<bool, TarError> {
        while n > 0 {
            let avail = self.r.fill_buf().map_err(|e| TarError::Io(e.to_string()))?;
            if avail.is_empty() {
                return Ok(false);
            }
            let k = avail.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            self.r.consume(k);
            self.pos += k as u64;
            n -= k as u64;
        }
        Ok(true)
    }

    /// Reads exactly `buf.len()` bytes. Ok(false) on EOF before the first byte,
    /// `Truncated` on EOF after it.
    fn read_exact_or_eof(&mut self, buf: &mut [u8], what: &'static str) -> Result<bool, TarError> {
        let mut filled = 0;
        while filled < buf.len() {
            let avail = self.r.fill_buf().map_err(|e| TarError::Io(e.to_string()))?;
            if avail.is_empty() {
                if filled == 0 {
                    return Ok(false);
                }
                return Err(TarError::Truncated(what));
            }
            let k = avail.len().min(buf.len() - filled);
            if let (Some(dst), Some(src)) = (buf.get_mut(filled..filled + k), avail.get(..k)) {
                dst.copy_from_slice(src);
            }
            self.r.consume(k);
            self.pos += k as u64;
            filled += k;
        }
        Ok(true)
    }

    /// Streams the rest of the current entry's content to `f`, slice by slice.
    pub fn read_content(&mut self, mut f: impl FnMut(&[u8])) -> Result<(), TarError> {
        while self.remaining > 0 {
            let avail = self.r.fill_buf().map_err(|e| TarError::Io(e.to_string()))?;
            if avail.is_empty() {
                return Err(TarError::Truncated("file content"));
            }
            let k = avail
                .len()
                .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            if let Some(s) = avail.get(..k) {
                f(s);
            }
            self.r.consume(k);
            self.pos += k as u64;
            self.remaining -= k as u64;
        }
        Ok(())
    }

    fn finish_entry(&mut self) -> Result<(), TarError> {
        let n = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        if !self.skip(n)? {
            return Err(TarError::Truncated("file content"));
        }
        Ok(())
    }

    fn read_meta(
        &mut self,
        size: u64,
        what: &'static str,
        offset: u64,
    ) -> Result<Vec<u8>, TarError> {
        if size > self.max_meta {
            return Err(TarError::MetadataTooLarge {
                what,
                offset,
                size,
                max: self.max_meta,
            });
        }
        // `size` ≤ `max_meta`, a few MiB (checked above).
        let mut buf = vec![0u8; usize::try_from(size).unwrap_or(0)];
        if !self.read_exact_or_eof(&mut buf, what)? && size > 0 {
            return Err(TarError::Truncated(what));
        }
        let pad = padding_of(size);
        if !self.skip(pad)? {
            return Err(TarError::Truncated(what));
        }
        Ok(buf)
    }

    /// The next entry, skipping whatever is left of the previous one. `None` at the
    /// end of the archive (end blocks, or a clean EOF at a header boundary).
    pub fn next_entry(&mut self) -> Result<Option<TarEntry>, TarError> {
        if self.finished {
            return Ok(None);
        }
        self.finish_entry()?;
        let mut long_name: Option<String> = None;
        let mut long_link: Option<String> = None;
        let mut pax_path: Option<String> = None;
        let mut pax_link: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            let offset = self.pos;
            let mut h = [0u8; BLOCK];
            if !self.read_exact_or_eof(&mut h, "a header")? {
                self.finished = true;
                return Ok(None);
            }
            if h.iter().all(|&b| b == 0) {
                self.finished = true;
                return Ok(None);
            }
            verify_checksum(&h, offset)?;
            let typeflag = h[156];
            let mut size = parse_number(&h[124..136]).ok_or(TarError::BadNumber {
                offset,
                field: "size",
            })?;
            match typeflag {
                b'x' | b'g' | b'L' | b'K' => {
                    let what = match typeflag {
                        b'L' => "GNU long name",
                        b'K' => "GNU long link",
                        _ => "PAX header",
                    };
                    let data = self.read_meta(size, what, offset)?;
                    match typeflag {
                        b'L' => long_name = Some(cstr(&data)),
                        b'K' => long_link = Some(cstr(&data)),
                        b'x' => {
                            for (k, v) in parse_pax(&data).ok_or(TarError::BadPax { offset })? {
                                match k {
                                    "path" => pax_path = Some(v.to_string()),
                                    "linkpath" => pax_link = Some(v.to_string()),
                                    "size" => {
                                        pax_size = Some(
                                            v.parse().map_err(|_| TarError::BadPax { offset })?,
                                        )
                                    }
                                    _ => {}
                                }
                            }
                        }
                        // Global PAX headers carry nothing a scan needs.
                        _ => {}
                    }
                    continue;
                }
                _ => {}
            }
            if let Some(s) = pax_size {
                size = s;
            }
            let kind = match typeflag {
                b'0' | 0 | b'7' => EntryKind::Regular,
                b'1' => EntryKind::Hardlink,
                b'2' => EntryKind::Symlink,
                b'3' => EntryKind::CharDevice,
                b'4' => EntryKind::BlockDevice,
                b'5' => EntryKind::Directory,
                b'6' => EntryKind::Fifo,
                t => EntryKind::Other(t),
            };
            if kind.header_only() {
                size = 0;
            }
            if size > self.max_entry {
                return Err(TarError::EntryTooLarge {
                    offset,
                    size,
                    max: self.max_entry,
                });
            }
            let path = match pax_path.or(long_name) {
                Some(p) => p,
                None => {
                    let name = cstr(&h[0..100]);
                    // The prefix field exists only in POSIX ustar ("ustar\0"); old GNU
                    // headers ("ustar  \0") use those bytes for other things.
                    if &h[257..263] == b"ustar\0" && h[345] != 0 {
                        format!("{}/{}", cstr(&h[345..500]), name)
                    } else {
                        name
                    }
                }
            };
            let link = match kind {
                EntryKind::Hardlink | EntryKind::Symlink => {
                    Some(pax_link.or(long_link).unwrap_or_else(|| cstr(&h[157..257])))
                }
                _ => None,
            };
            let mode = u32::try_from(parse_number(&h[100..108]).unwrap_or(0) & 0o7777).unwrap_or(0);
            let (dev_major, dev_minor) = match kind {
                EntryKind::CharDevice | EntryKind::BlockDevice => (
                    u32::try_from(parse_number(&h[329..337]).unwrap_or(0)).unwrap_or(u32::MAX),
                    u32::try_from(parse_number(&h[337..345]).unwrap_or(0)).unwrap_or(u32::MAX),
                ),
                _ => (0, 0),
            };
            self.remaining = size;
            self.padding = padding_of(size);
            return Ok(Some(TarEntry {
                path,
                link,
                kind,
                mode,
                size,
                dev_major,
                dev_minor,
            }));
        }
    }
}

fn padding_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn cstr(b: &[u8]) -> String {
    let end = memchr::memchr(0, b).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or(b)).into_owned()
}

/// Octal (NUL/space padded) or GNU base-256 (high bit set) numbers.
fn parse_number(field: &[u8]) -> Option<u64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        if first == 0xff {
            return None; // negative
        }
        let mut v: u64 = u64::from(first & 0x7f);
        for &b in field.get(1..)? {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let s: &[u8] = {
        let start = field
            .iter()
            .position(|&b| b != b' ' && b != 0)
            .unwrap_or(field.len());
        let rest = field.get(start..)?;
        let end = rest
            .iter()
            .position(|&b| b == b' ' || b == 0)
            .unwrap_or(rest.len());
        rest.get(..end)?
    };
    if s.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for &b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn verify_checksum(h: &[u8; BLOCK], offset: u64) -> Result<(), TarError> {
    let want = parse_number(&h[148..156]).ok_or(TarError::BadChecksum { offset })?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if want == unsigned || i64::try_from(want).ok() == Some(signed) {
        Ok(())
    } else {
        Err(TarError::BadChecksum { offset })
    }
}

/// PAX records: `"<len> <key>=<value>\n"`, `len` counting the whole record.
fn parse_pax(data: &[u8]) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = memchr::memchr(b' ', rest)?;
        let len: usize = std::str::from_utf8(rest.get(..sp)?).ok()?.parse().ok()?;
        if len <= sp + 1 || len > rest.len() {
            return None;
        }
        let record = rest.get(sp + 1..len)?;
        let record = record.strip_suffix(b"\n")?;
        let eq = memchr::memchr(b'=', record)?;
        let key = std::str::from_utf8(record.get(..eq)?).ok()?;
        let value = std::str::from_utf8(record.get(eq + 1..)?).ok()?;
        out.push((key, value));
        rest = rest.get(len..)?;
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ustar header builder for hostile-input tests.
    pub fn header(name: &str, typeflag: u8, size_field: &[u8], link: &str) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..124 + size_field.len()].copy_from_slice(size_field);
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        fix_checksum(&mut h);
        h
    }

    pub fn fix_checksum(h: &mut [u8; BLOCK]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
    }

    fn walk(data: &[u8]) -> Result<Vec<(TarEntry, Vec<u8>)>, TarError> {
        let mut w = TarWalker::new(data, 1 << 30, 1 << 20);
        let mut out = Vec::new();
        while let Some(e) = w.next_entry()? {
            let mut c = Vec::new();
            if e.path.ends_with(".read") || e.kind == EntryKind::Regular {
                w.read_content(|s| c.extend_from_slice(s))?;
            }
            out.push((e, c));
        }
        Ok(out)
    }

    fn pax_record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        format!("{len}{body}")
    }

    #[test]
    fn reads_ustar_prefix_pax_and_gnu_long_names() {
        let mut tar = Vec::new();
        // GNU long name.
        let long = format!("{}/file.txt", "d".repeat(150));
        let mut l = header(
            "././@LongLink",
            b'L',
            format!("{:011o}\0", long.len() + 1).as_bytes(),
            "",
        );
        fix_checksum(&mut l);
        tar.extend_from_slice(&l);
        let mut data = long.clone().into_bytes();
        data.push(0);
        data.resize(512, 0);
        tar.extend_from_slice(&data);
        tar.extend_from_slice(&header("short", b'0', b"00000000003\0", ""));
        tar.extend_from_slice(&{
            let mut b = [0u8; 512];
            b[..3].copy_from_slice(b"abc");
            b
        });
        // PAX path and linkpath for a symlink.
        let rec = format!(
            "{}{}",
            pax_record("path", "pax/name"),
            pax_record("linkpath", "../target")
        );
        tar.extend_from_slice(&header(
            "PaxHeaders/x",
            b'x',
            format!("{:011o}\0", rec.len()).as_bytes(),
            "",
        ));
        let mut recb = rec.into_bytes();
        recb.resize(512, 0);
        tar.extend_from_slice(&recb);
        tar.extend_from_slice(&header("ignored", b'2', b"00000000000\0", "ignored"));
        // ustar prefix.
        let mut p = header("name", b'5', b"00000000000\0", "");
        p[345..351].copy_from_slice(b"prefix");
        fix_checksum(&mut p);
        tar.extend_from_slice(&p);
        tar.extend_from_slice(&[0u8; 1024]);
        let got = walk(&tar).unwrap();
        assert_eq!(got[0].0.path, long);
        assert_eq!(got[0].1, b"abc");
        assert_eq!(got[1].0.path, "pax/name");
        assert_eq!(got[1].0.link.as_deref(), Some("../target"));
        assert_eq!(got[1].0.kind, EntryKind::Symlink);
        assert_eq!(got[2].0.path, "prefix/name");
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn base256_size() {
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 5;
        assert_eq!(parse_number(&f), Some(5));
        f[0] = 0xff;
        assert_eq!(parse_number(&f), None);
        assert_eq!(parse_number(b"0000012\0"), Some(10));
        assert_eq!(parse_number(b"   12 \0"), Some(10));
        assert_eq!(parse_number(b"0009\0"), None);
    }

    #[test]
    fn hostile_headers_are_errors_not_panics() {
        // Bad checksum.
        let mut h = header("a", b'0', b"00000000000\0", "");
        h[0] = b'b';
        assert!(matches!(walk(&h), Err(TarError::BadChecksum { .. })));
        // Size beyond the stream: truncated.
        let mut t = header("a", b'0', b"00000001000\0", "").to_vec();
        t.extend_from_slice(&[1u8; 100]);
        assert_eq!(walk(&t), Err(TarError::Truncated("file content")));
        // PAX declaring an absurd size.
        let rec = pax_record("size", "99999999999999999");
        let mut t = header("x", b'x', format!("{:011o}\0", rec.len()).as_bytes(), "").to_vec();
        let mut r = rec.into_bytes();
        r.resize(512, 0);
        t.extend_from_slice(&r);
        t.extend_from_slice(&header("big", b'0', b"00000000000\0", ""));
        assert!(matches!(walk(&t), Err(TarError::EntryTooLarge { .. })));
        // PAX record whose length lies.
        let mut t = header("x", b'x', b"00000000020\0", "").to_vec();
        let mut r = b"999 path=x\n".to_vec();
        r.resize(512, 0);
        t.extend_from_slice(&r);
        assert!(matches!(walk(&t), Err(TarError::BadPax { .. })));
        // Huge PAX record refused before allocation.
        let t = header("x", b'x', b"77777777777\0", "").to_vec();
        assert!(matches!(walk(&t), Err(TarError::MetadataTooLarge { .. })));
        // Garbage in the size field.
        let t = header("x", b'0', b"zzzzzzzzzzz\0", "").to_vec();
        assert!(matches!(walk(&t), Err(TarError::BadNumber { .. })));
        // Header cut short.
        let t = header("x", b'0', b"00000000000\0", "");
        assert_eq!(walk(&t[..300]), Err(TarError::Truncated("a header")));
        // Directory with a size: no data follows.
        let mut t = header("d", b'5', b"00000001000\0", "").to_vec();
        t.extend_from_slice(&header("f", b'0', b"00000000000\0", ""));
        let got = walk(&t).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0.path, "f");
    }
}
