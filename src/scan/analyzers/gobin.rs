//! Go binaries: the build info the Go linker embeds (`\xff Go buildinf:` at the start
//! of `.go.buildinfo`): toolchain version, main module and dependency modules. Found
//! by streaming the binary through [`BuildInfoFinder`]; only the Go 1.18+ inline
//! layout is decoded (older binaries store pointers, not strings).

use crate::report::{Package, PackageType};

use super::package;

pub const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// Bytes kept after the magic: header (32) + version + module info. Real module info
/// is a few KiB; the cap bounds memory on hostile input.
const CAPTURE: usize = 1 << 20;

/// Streams an ELF file's bytes and captures the build-info blob when it passes by.
pub struct BuildInfoFinder {
    finder: memchr::memmem::Finder<'static>,
    offset: u64,
    /// Last bytes of the previous slice, to catch a magic split across slices.
    tail: Vec<u8>,
    captured: Option<Vec<u8>>,
}

impl Default for BuildInfoFinder {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildInfoFinder {
    pub fn new() -> Self {
        BuildInfoFinder {
            finder: memchr::memmem::Finder::new(MAGIC),
            offset: 0,
            tail: Vec::new(),
            captured: None,
        }
    }

    pub fn feed(&mut self, slice: &[u8]) {
        if let Some(c) = &mut self.captured {
            if c.len() < CAPTURE {
                let k = (CAPTURE - c.len()).min(slice.len());
                c.extend_from_slice(slice.get(..k).unwrap_or_default());
            }
            self.offset += slice.len() as u64;
            return;
        }
        // A magic straddling the previous slice and this one.
        if !self.tail.is_empty() {
            let mut joined = std::mem::take(&mut self.tail);
            let base = self.offset - joined.len() as u64;
            joined.extend_from_slice(slice.get(..MAGIC.len() - 1).unwrap_or(slice));
            if let Some(i) = self.aligned_match(&joined, base) {
                let mut c = joined.get(i..).unwrap_or_default().to_vec();
                // `offset - base` is the tail's length, a usize to begin with.
                let used = joined.len() - usize::try_from(self.offset - base).unwrap_or(0);
                c.extend_from_slice(slice.get(used..).unwrap_or_default());
                c.truncate(CAPTURE);
                self.captured = Some(c);
                self.offset += slice.len() as u64;
                return;
            }
        }
        if let Some(i) = self.aligned_match(slice, self.offset) {
            let mut c = slice.get(i..).unwrap_or_default().to_vec();
            c.truncate(CAPTURE);
            self.captured = Some(c);
        } else {
            let keep = slice.len().min(MAGIC.len() - 1);
            self.tail = slice.get(slice.len() - keep..).unwrap_or_default().to_vec();
        }
        self.offset += slice.len() as u64;
    }

    /// The section starts 16-byte aligned; the same bytes as a string literal
    /// elsewhere (debug/buildinfo's own constant) usually are not.
    fn aligned_match(&self, hay: &[u8], base: u64) -> Option<usize> {
        self.finder
            .find_iter(hay)
            .find(|&i| (base + i as u64).is_multiple_of(16))
    }

    /// The packages of the binary, if build info was found and decodes.
    pub fn finish(self) -> Vec<Package> {
        self.captured.as_deref().map(parse).unwrap_or_default()
    }
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn read_str(b: &[u8]) -> Option<(&str, &[u8])> {
    let (len, n) = uvarint(b)?;
    let len = usize::try_from(len).ok()?;
    let s = b.get(n..n.checked_add(len)?)?;
    Some((std::str::from_utf8(s).ok()?, b.get(n + len..)?))
}

/// Decodes the blob starting at the magic.
pub fn parse(blob: &[u8]) -> Vec<Package> {
    let flags = blob.get(15).copied().unwrap_or(0);
    if flags & 2 == 0 {
        return Vec::new(); // pre-1.18 pointer layout
    }
    let Some((goversion, rest)) = blob.get(32..).and_then(read_str) else {
        return Vec::new();
    };
    let Some((modinfo, _)) = read_str(rest) else {
        return Vec::new();
    };
    // Module info is framed by 16-byte sentinels.
    let modinfo =
        if modinfo.len() >= 33 && modinfo.as_bytes().get(modinfo.len() - 17) == Some(&b'\n') {
            modinfo.get(16..modinfo.len() - 16).unwrap_or("")
        } else {
            modinfo
        };
    let mut out = Vec::new();
    if let Some(v) = goversion.strip_prefix("go") {
        // Only the release part: "go1.22.1 X:boringcrypto" → 1.22.1.
        let v = v.split_whitespace().next().unwrap_or(v);
        out.push(package(PackageType::Go, "stdlib", &format!("v{v}")));
    }
    for line in modinfo.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["mod", path, version, ..] | ["dep", path, version, ..] => {
                out.push(package(PackageType::GoModule, path, version));
            }
            ["=>", path, version, ..] => {
                // Replacement of the previous dep.
                if let Some(last) = out.last_mut().filter(|p| p.kind == PackageType::GoModule) {
                    last.name = path.to_string();
                    last.version = version.to_string();
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn varstr(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut n = s.len() as u64;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// A `.go.buildinfo` section as the Go 1.18+ linker writes it.
    pub fn buildinfo_blob(goversion: &str, modinfo: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.push(8); // pointer size
        b.push(2); // flags: inline strings, little endian
        b.resize(32, 0);
        b.extend(varstr(goversion));
        // Real sentinels are 16 raw bytes each; any 16 bytes with '\n' before the tail decode.
        let body = format!(
            "{}{}\n{}",
            "S".repeat(16),
            modinfo.trim_end_matches('\n'),
            "E".repeat(16)
        );
        b.extend(varstr(&body));
        b
    }

    pub const MODINFO: &str = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgithub.com/google/uuid\tv1.6.0\th1:abc=\ndep\tgolang.org/x/net\tv0.20.0\th1:def=\n=>\tgolang.org/x/net\tv0.23.0\th1:ghi=\nbuild\t-compiler=gc\n";

    #[test]
    fn finds_buildinfo_split_across_slices() {
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(4096, 0);
        elf.extend(buildinfo_blob("go1.22.1", MODINFO));
        elf.resize(9000, 0xcc);
        for split in [1usize, 7, 4096 + 5, 4100, 8000] {
            let mut f = BuildInfoFinder::new();
            f.feed(&elf[..split]);
            f.feed(&elf[split..]);
            let p = f.finish();
            let got: Vec<_> = p
                .iter()
                .map(|p| (p.name.as_str(), p.version.as_str()))
                .collect();
            assert_eq!(
                got,
                [
                    ("stdlib", "v1.22.1"),
                    ("example.com/app", "(devel)"),
                    ("github.com/google/uuid", "v1.6.0"),
                    ("golang.org/x/net", "v0.23.0")
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn hostile_buildinfo() {
        let mut b = buildinfo_blob("go1.22.1", MODINFO);
        b[32] = 0xff; // varint never ends / absurd length
        b[33] = 0xff;
        assert!(parse(&b).is_empty());
        assert!(parse(&MAGIC[..]).is_empty());
        let mut unaligned = vec![0u8; 3];
        unaligned.extend(buildinfo_blob("go1.22.1", MODINFO));
        let mut f = BuildInfoFinder::new();
        f.feed(&unaligned);
        assert!(f.finish().is_empty());
    }
}
