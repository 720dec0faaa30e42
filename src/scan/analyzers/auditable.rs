//! Rust binaries built with `cargo auditable`: the linker keeps an ELF section
//! `.dep-v0` holding the zlib-compressed JSON dependency tree
//! (`{"packages":[{"name","version","source","kind","dependencies","root"}]}`).
//! crates.io runtime dependencies become `Rust` packages (matched against crates.io
//! advisories); build-time-only crates (`kind: "build"`: proc macros, build scripts)
//! do not ship in the binary and are skipped; the root crate is reported as the
//! binary's own `RustBinary` record and not matched.
//!
//! The section is found through the section header table, read by the small
//! bounds-checked ELF32/ELF64 reader below: the `object` crate would do it too, but it
//! is not in the dependency tree and this needs three header fields and a name lookup.

use std::io::Read;

use serde::Deserialize;

use crate::report::{Package, PackageType};

use super::package;

pub const SECTION: &str = ".dep-v0";
/// Inflated JSON kept at most; real trees are tens of KiB (a few thousand crates at
/// ~100 bytes each). Past this the section is a bomb, not a dependency list.
pub const MAX_JSON: u64 = 8 << 20;
/// Compressed section size read at most.
const MAX_SECTION: u64 = 8 << 20;
/// Section headers walked at most (real binaries have a few dozen; ELF allows 2^32).
const MAX_SECTIONS: u64 = 1 << 16;
const MAX_PACKAGES: usize = 100_000;
const MAX_FIELD: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditableError {
    #[error("ELF header is truncated or invalid")]
    BadHeader,
    #[error("ELF section header table lies outside the file")]
    SectionTableOutOfBounds,
    #[error("ELF has {0} section headers, over the {MAX_SECTIONS} limit")]
    TooManySections(u64),
    #[error("section {SECTION} lies outside the file")]
    SectionOutOfBounds,
    #[error("section {SECTION} is {0} bytes, over the {MAX_SECTION} byte limit")]
    SectionTooLarge(u64),
    #[error("section {SECTION} does not inflate: {0}")]
    Inflate(String),
    #[error("section {SECTION} inflates to more than {MAX_JSON} bytes")]
    InflatedTooLarge,
    #[error("section {SECTION} is not a dependency list: {0}")]
    Json(String),
}

impl AuditableError {
    /// True when the binary has a `.dep-v0` section that could not be read; false when
    /// the ELF structure itself is unreadable (then there is no dependency list to
    /// speak of, as for any other unusual ELF file).
    pub fn is_in_dependency_list(&self) -> bool {
        match self {
            AuditableError::BadHeader
            | AuditableError::SectionTableOutOfBounds
            | AuditableError::TooManySections(_) => false,
            AuditableError::SectionOutOfBounds
            | AuditableError::SectionTooLarge(_)
            | AuditableError::Inflate(_)
            | AuditableError::InflatedTooLarge
            | AuditableError::Json(_) => true,
        }
    }
}

/// Byte order and class of the file being read.
#[derive(Clone, Copy)]
struct Elf<'a> {
    bytes: &'a [u8],
    is64: bool,
    big_endian: bool,
}

impl<'a> Elf<'a> {
    fn uint(&self, at: u64, width: usize) -> Option<u64> {
        let start = usize::try_from(at).ok()?;
        let b = self.bytes.get(start..start.checked_add(width)?)?;
        let mut v: u64 = 0;
        for i in 0..width {
            let byte = if self.big_endian {
                b.get(i)
            } else {
                b.get(width - 1 - i)
            };
            v = (v << 8) | u64::from(*byte?);
        }
        Some(v)
    }

    fn u16(&self, at: u64) -> Option<u64> {
        self.uint(at, 2)
    }

    fn u32(&self, at: u64) -> Option<u64> {
        self.uint(at, 4)
    }

    /// An address-sized field (`Elf32_Off` / `Elf64_Off`, `…_Xword`).
    fn word(&self, at: u64) -> Option<u64> {
        self.uint(at, if self.is64 { 8 } else { 4 })
    }

    fn slice(&self, offset: u64, size: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        self.bytes.get(start..end)
    }
}

/// One section header's fields that matter here.
struct Section {
    name: u64,
    kind: u64,
    link: u64,
    offset: u64,
    size: u64,
}

const SHT_NOBITS: u64 = 8;
const SHN_XINDEX: u64 = 0xffff;

/// The bytes of the named section; `Ok(None)` when the file has no such section (or
/// no section headers at all, as `sstrip`ped binaries).
fn find_section<'a>(bytes: &'a [u8], wanted: &str) -> Result<Option<&'a [u8]>, AuditableError> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err(AuditableError::BadHeader);
    }
    let (is64, big_endian) = match (bytes.get(4), bytes.get(5)) {
        (Some(1), Some(1)) => (false, false),
        (Some(1), Some(2)) => (false, true),
        (Some(2), Some(1)) => (true, false),
        (Some(2), Some(2)) => (true, true),
        _ => return Err(AuditableError::BadHeader),
    };
    let elf = Elf {
        bytes,
        is64,
        big_endian,
    };
    let bad = AuditableError::BadHeader;
    // e_shoff, e_shentsize, e_shnum, e_shstrndx
    let (shoff, shentsize, shnum, shstrndx) = if is64 {
        (elf.word(0x28), elf.u16(0x3a), elf.u16(0x3c), elf.u16(0x3e))
    } else {
        (elf.word(0x20), elf.u16(0x2e), elf.u16(0x30), elf.u16(0x32))
    };
    let (shoff, shentsize, mut shnum, mut shstrndx) = (
        shoff.ok_or(bad.clone())?,
        shentsize.ok_or(bad.clone())?,
        shnum.ok_or(bad.clone())?,
        shstrndx.ok_or(bad.clone())?,
    );
    if shoff == 0 {
        return Ok(None);
    }
    let min_entsize = if is64 { 64 } else { 40 };
    if shentsize < min_entsize {
        return Err(bad);
    }
    let section = |i: u64| -> Result<Section, AuditableError> {
        let at = i
            .checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
            .ok_or(AuditableError::SectionTableOutOfBounds)?;
        let f = |field: Option<u64>| field.ok_or(AuditableError::SectionTableOutOfBounds);
        Ok(if is64 {
            Section {
                name: f(elf.u32(at))?,
                kind: f(elf.u32(at + 4))?,
                offset: f(elf.word(at + 0x18))?,
                size: f(elf.word(at + 0x20))?,
                link: f(elf.u32(at + 0x28))?,
            }
        } else {
            Section {
                name: f(elf.u32(at))?,
                kind: f(elf.u32(at + 4))?,
                offset: f(elf.word(at + 0x10))?,
                size: f(elf.word(at + 0x14))?,
                link: f(elf.u32(at + 0x18))?,
            }
        })
    };
    // Extended numbering: counts too large for the header live in section 0.
    if shnum == 0 || shstrndx == SHN_XINDEX {
        let zero = section(0)?;
        if shnum == 0 {
            shnum = zero.size;
        }
        if shstrndx == SHN_XINDEX {
            shstrndx = zero.link;
        }
    }
    if shnum > MAX_SECTIONS {
        return Err(AuditableError::TooManySections(shnum));
    }
    let table_end = shnum
        .checked_mul(shentsize)
        .and_then(|n| n.checked_add(shoff));
    if table_end.is_none_or(|end| end > bytes.len() as u64) {
        return Err(AuditableError::SectionTableOutOfBounds);
    }
    if shstrndx >= shnum {
        return Err(AuditableError::BadHeader);
    }
    let strtab = section(shstrndx)?;
    let names = elf
        .slice(strtab.offset, strtab.size)
        .ok_or(AuditableError::SectionTableOutOfBounds)?;
    for i in 0..shnum {
        let s = section(i)?;
        let name = usize::try_from(s.name)
            .ok()
            .and_then(|n| names.get(n..))
            .and_then(|rest| rest.split(|&b| b == 0).next());
        if name != Some(wanted.as_bytes()) {
            continue;
        }
        if s.kind == SHT_NOBITS {
            return Ok(None);
        }
        if s.size > MAX_SECTION {
            return Err(AuditableError::SectionTooLarge(s.size));
        }
        return elf
            .slice(s.offset, s.size)
            .map(Some)
            .ok_or(AuditableError::SectionOutOfBounds);
    }
    Ok(None)
}

#[derive(Deserialize)]
struct VersionInfo {
    packages: Vec<AuditPackage>,
}

#[derive(Deserialize)]
struct AuditPackage {
    name: String,
    version: String,
    /// `crates.io`, `local`, `git`, `registry`, `other`; a missing one is not crates.io.
    #[serde(default)]
    source: String,
    /// `runtime` when absent.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    root: bool,
}

/// Inflates the section, never past [`MAX_JSON`].
fn inflate(section: &[u8]) -> Result<Vec<u8>, AuditableError> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(section)
        .take(MAX_JSON + 1)
        .read_to_end(&mut out)
        .map_err(|e| AuditableError::Inflate(e.to_string()))?;
    if out.len() as u64 > MAX_JSON {
        return Err(AuditableError::InflatedTooLarge);
    }
    Ok(out)
}

/// The packages of a cargo-auditable section's compressed bytes.
pub fn parse_section(section: &[u8]) -> Result<Vec<Package>, AuditableError> {
    let json = inflate(section)?;
    let info: VersionInfo =
        serde_json::from_slice(&json).map_err(|e| AuditableError::Json(e.to_string()))?;
    let ok = |s: &str| {
        !s.is_empty() && s.len() <= MAX_FIELD && !s.chars().any(|c| c.is_control() || c == ' ')
    };
    Ok(info
        .packages
        .into_iter()
        .take(MAX_PACKAGES)
        .filter(|p| ok(&p.name) && ok(&p.version))
        .filter_map(|p| {
            if p.root {
                return Some(package(PackageType::RustBinary, &p.name, &p.version));
            }
            let runtime = p.kind.as_deref().is_none_or(|k| k == "runtime");
            (runtime && p.source == "crates.io")
                .then(|| package(PackageType::Rust, &p.name, &p.version))
        })
        .collect())
}

/// The packages of an ELF file: `Ok(empty)` when it carries no `.dep-v0`.
pub fn parse_elf(bytes: &[u8]) -> Result<Vec<Package>, AuditableError> {
    match find_section(bytes, SECTION)? {
        Some(section) => parse_section(section),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub const TREE: &str = r#"{"packages":[
        {"name":"app","version":"0.1.0","source":"local","dependencies":[1,2,3],"root":true},
        {"name":"serde","version":"1.0.200","source":"crates.io"},
        {"name":"serde_derive","version":"1.0.200","source":"crates.io","kind":"build"},
        {"name":"smallvec","version":"1.6.0","source":"crates.io","kind":"runtime","dependencies":[]},
        {"name":"helper","version":"0.2.0","source":"local"},
        {"name":"forked","version":"0.3.0","source":"git"}
    ]}"#;

    pub fn zlib(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    /// A minimal ELF with a `.text`, the given `.dep-v0` contents and a `.shstrtab`,
    /// section headers at the end as linkers place them.
    pub fn elf_with(dep: &[u8], is64: bool, big_endian: bool) -> Vec<u8> {
        let put = |out: &mut Vec<u8>, v: u64, width: usize| {
            let b = v.to_be_bytes();
            let b = &b[8 - width..];
            if big_endian {
                out.extend_from_slice(b);
            } else {
                out.extend(b.iter().rev());
            }
        };
        let (ehsize, shentsize) = if is64 { (64, 64) } else { (52, 40) };
        let word = if is64 { 8 } else { 4 };
        let text = vec![0x90u8; 100];
        let shstrtab = b"\0.text\0.dep-v0\0.shstrtab\0".to_vec();
        let text_off = ehsize as u64;
        let dep_off = text_off + text.len() as u64;
        let str_off = dep_off + dep.len() as u64;
        let shoff = (str_off + shstrtab.len() as u64).next_multiple_of(8);
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.push(if is64 { 2 } else { 1 });
        out.push(if big_endian { 2 } else { 1 });
        out.push(1); // EV_CURRENT
        out.resize(16, 0);
        put(&mut out, 2, 2); // ET_EXEC
        put(&mut out, 62, 2); // EM_X86_64
        put(&mut out, 1, 4);
        put(&mut out, 0, word); // e_entry
        put(&mut out, 0, word); // e_phoff
        put(&mut out, shoff, word);
        put(&mut out, 0, 4); // e_flags
        put(&mut out, ehsize as u64, 2);
        put(&mut out, 0, 2); // e_phentsize
        put(&mut out, 0, 2); // e_phnum
        put(&mut out, shentsize as u64, 2);
        put(&mut out, 4, 2); // e_shnum
        put(&mut out, 3, 2); // e_shstrndx
        assert_eq!(out.len(), ehsize);
        out.extend_from_slice(&text);
        out.extend_from_slice(dep);
        out.extend_from_slice(&shstrtab);
        out.resize(shoff as usize, 0);
        let mut header = |name: u64, kind: u64, flags: u64, off: u64, size: u64| {
            let start = out.len();
            put(&mut out, name, 4);
            put(&mut out, kind, 4);
            put(&mut out, flags, word);
            put(&mut out, 0, word); // sh_addr
            put(&mut out, off, word);
            put(&mut out, size, word);
            put(&mut out, 0, 4); // sh_link
            put(&mut out, 0, 4); // sh_info
            put(&mut out, 1, word); // sh_addralign
            put(&mut out, 0, word); // sh_entsize
            assert_eq!(out.len() - start, shentsize);
        };
        header(0, 0, 0, 0, 0);
        header(1, 1, 6, text_off, text.len() as u64); // .text PROGBITS AX
        header(7, 1, 0, dep_off, dep.len() as u64); // .dep-v0 PROGBITS
        header(15, 3, 0, str_off, shstrtab.len() as u64); // .shstrtab STRTAB
        out
    }

    fn got(p: &[Package]) -> Vec<(&str, &str, PackageType)> {
        p.iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.kind))
            .collect()
    }

    #[test]
    fn dependency_tree_from_every_elf_layout() {
        let dep = zlib(TREE.as_bytes());
        for (is64, be) in [(true, false), (true, true), (false, false), (false, true)] {
            let p = parse_elf(&elf_with(&dep, is64, be)).unwrap();
            assert_eq!(
                got(&p),
                [
                    ("app", "0.1.0", PackageType::RustBinary),
                    ("serde", "1.0.200", PackageType::Rust),
                    ("smallvec", "1.6.0", PackageType::Rust),
                ],
                "is64 {is64} big-endian {be}"
            );
        }
        // an ELF without the section, or without section headers at all
        let mut plain = elf_with(&dep, true, false);
        // the .dep-v0 header's name: point it at ".text"
        let at = plain.len() - 64 * 2;
        plain[at] = 1;
        assert!(parse_elf(&plain).unwrap().is_empty());
        let mut stripped = elf_with(&dep, true, false);
        stripped[0x28..0x30].fill(0);
        assert!(parse_elf(&stripped).unwrap().is_empty());
    }

    #[test]
    fn hostile_headers() {
        let dep = zlib(TREE.as_bytes());
        let good = elf_with(&dep, true, false);
        assert_eq!(parse_elf(b"\x7fEL"), Err(AuditableError::BadHeader));
        assert_eq!(parse_elf(b"MZ\x90\x00"), Err(AuditableError::BadHeader));
        // section table past the end
        let mut e = good.clone();
        e[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse_elf(&e), Err(AuditableError::SectionTableOutOfBounds));
        assert!(!AuditableError::SectionTableOutOfBounds.is_in_dependency_list());
        assert!(AuditableError::InflatedTooLarge.is_in_dependency_list());
        // absurd section count, directly and through extended numbering
        let mut e = good.clone();
        e[0x3c..0x3e].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert_eq!(parse_elf(&e), Err(AuditableError::SectionTableOutOfBounds));
        let mut e = good.clone();
        e[0x3c..0x3e].fill(0);
        let shoff = u64::from_le_bytes(e[0x28..0x30].try_into().unwrap()) as usize;
        e[shoff + 0x20..shoff + 0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            parse_elf(&e),
            Err(AuditableError::TooManySections(u64::MAX))
        );
        // the section's offset past the end of the file, and an absurd size
        let dep_hdr = shoff + 2 * 64;
        let mut e = good.clone();
        e[dep_hdr + 0x18..dep_hdr + 0x20].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert_eq!(parse_elf(&e), Err(AuditableError::SectionOutOfBounds));
        let mut e = good.clone();
        e[dep_hdr + 0x20..dep_hdr + 0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            parse_elf(&e),
            Err(AuditableError::SectionTooLarge(u64::MAX))
        );
        // tiny section header entries, a string table index out of range
        let mut e = good.clone();
        e[0x3a..0x3c].copy_from_slice(&8u16.to_le_bytes());
        assert_eq!(parse_elf(&e), Err(AuditableError::BadHeader));
        let mut e = good.clone();
        e[0x3e..0x40].copy_from_slice(&9u16.to_le_bytes());
        assert_eq!(parse_elf(&e), Err(AuditableError::BadHeader));
        // every truncation and every byte flipped: an answer, never a panic
        for cut in 0..good.len() {
            let _ = parse_elf(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut e = good.clone();
            e[i] ^= 0xff;
            let _ = parse_elf(&e);
        }
    }

    #[test]
    fn hostile_section_contents() {
        // a bomb: 64 MiB of zeros compress to ~64 KiB
        let bomb = {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            let zeros = vec![b' '; 1 << 20];
            for _ in 0..64 {
                z.write_all(&zeros).unwrap();
            }
            z.finish().unwrap()
        };
        assert_eq!(
            parse_elf(&elf_with(&bomb, true, false)),
            Err(AuditableError::InflatedTooLarge)
        );
        assert!(matches!(
            parse_section(b"not zlib"),
            Err(AuditableError::Inflate(_))
        ));
        assert!(matches!(
            parse_section(&zlib(b"{\"packages\": [")),
            Err(AuditableError::Json(_)) | Err(AuditableError::Inflate(_))
        ));
        assert!(matches!(
            parse_section(&zlib(
                br#"{"packages": [{"name": 1, "version": "1", "source": "crates.io"}]}"#
            )),
            Err(AuditableError::Json(_))
        ));
        assert!(matches!(
            parse_section(&zlib(br#"{"packages": {"a": 1}}"#)),
            Err(AuditableError::Json(_))
        ));
        let z = zlib(TREE.as_bytes());
        assert!(matches!(
            parse_section(&z[..z.len() / 2]),
            Err(AuditableError::Inflate(_))
        ));
        // names that are not names are dropped
        let odd = zlib(br#"{"packages": [{"name": "", "version": "1", "source": "crates.io"}, {"name": "a b", "version": "1", "source": "crates.io"}]}"#);
        assert!(parse_section(&odd).unwrap().is_empty());
    }
}
