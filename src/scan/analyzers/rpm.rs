//! rpm's package database, in the three formats images carry: sqlite `rpmdb.sqlite`
//! (rpm ≥ 4.16: RHEL/UBI 9, Fedora 33+, Amazon Linux 2023, Rocky/Alma 9), Berkeley DB
//! hash `Packages` (RHEL/CentOS 7 and 8, Amazon Linux 2) and rpm's own ndb
//! `Packages.db` (openSUSE, SLE 15 SP3+). Each is a list of rpm headers; a header gives
//! the package record and the Python metadata directories the package owns (so pip's
//! view of them is not reported twice).

mod bdb;
mod header;
mod ndb;

use crate::report::{Package, PackageType};

use self::header::{Header, HeaderError};
use super::package;

pub use self::bdb::BdbError;
pub use self::ndb::NdbError;

/// The sqlite database may not make sqlite do more than this many VM steps (in units
/// of `PROGRESS_STEP`): reading every row of a real database takes a small fraction of
/// it; a forged schema (a view or generated column computing forever) is stopped.
const PROGRESS_STEP: i32 = 10_000;
const MAX_PROGRESS_CALLS: u32 = 20_000;
/// Largest value sqlite may build (rpm's own header limit is 256 MiB; a real header is
/// kilobytes to a few MiB for packages with huge file lists).
const MAX_SQLITE_VALUE: i32 = 64 << 20;

/// What one package database declares.
#[derive(Debug, Default)]
pub struct RpmDb {
    pub packages: Vec<Package>,
    /// `.dist-info` / `.egg-info` directories and gem specifications the packages
    /// own (normalized, no leading slash).
    pub python_dirs: Vec<String>,
    /// Headers that could not be read, with the first reason: the database is then
    /// incompletely known.
    pub bad_headers: usize,
    pub first_error: Option<HeaderError>,
}

#[derive(Debug, thiserror::Error)]
pub enum RpmDbError {
    #[error("not an sqlite database")]
    NotSqlite,
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("sqlite database has no Packages table (found {0:?})")]
    NoPackagesTable(Option<String>),
    #[error("Berkeley DB: {0}")]
    Bdb(#[from] BdbError),
    #[error("ndb: {0}")]
    Ndb(#[from] NdbError),
}

impl RpmDb {
    fn add_header(&mut self, blob: &[u8]) {
        match package_of(blob) {
            Ok(Some((p, dirs))) => {
                self.packages.push(p);
                self.python_dirs.extend(dirs);
            }
            Ok(None) => {}
            Err(e) => {
                self.bad_headers += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// Packages of an sqlite `rpmdb.sqlite`.
///
/// The database is opened from memory (`sqlite3_deserialize`) rather than from a
/// temporary file: the bytes are already in memory, the daemon's unit makes most of
/// the file system read-only (`ProtectSystem=strict`), and nothing is left behind on a
/// crash. In memory sqlite cannot
/// use a WAL, so the header's WAL marker (rpm opens its database in WAL mode) is set
/// back to the rollback journal in our copy; a checkpointed database reads the same.
pub fn parse_sqlite(bytes: &[u8]) -> Result<RpmDb, RpmDbError> {
    const MAGIC: &[u8] = b"SQLite format 3\0";
    if bytes.len() < 100 || !bytes.starts_with(MAGIC) {
        return Err(RpmDbError::NotSqlite);
    }
    let mut conn = rusqlite::Connection::open_in_memory()?;
    // Bounded before any byte of the image is parsed.
    conn.set_limit(
        rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH,
        MAX_SQLITE_VALUE,
    )?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA,
        false,
    )?;
    let mut calls = 0u32;
    conn.progress_handler(
        PROGRESS_STEP,
        Some(move || {
            calls += 1;
            calls > MAX_PROGRESS_CALLS
        }),
    )?;
    let patched = std::io::Read::chain(
        std::io::Read::chain(&bytes[..18], &[1u8, 1][..]),
        &bytes[20..],
    );
    conn.deserialize_read_exact(rusqlite::MAIN_DB, patched, bytes.len(), true)?;
    // Only a real table: a view could compute rows without end.
    let kind: Option<String> = conn
        .query_row(
            "SELECT type FROM sqlite_schema WHERE name = 'Packages'",
            [],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    if kind.as_deref() != Some("table") {
        return Err(RpmDbError::NoPackagesTable(kind));
    }
    let mut db = RpmDb::default();
    let mut stmt = conn.prepare("SELECT blob FROM Packages")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        match row.get_ref(0)?.as_blob() {
            Ok(blob) => db.add_header(blob),
            Err(_) => {
                db.bad_headers += 1;
                db.first_error.get_or_insert(HeaderError::NotBlob);
            }
        }
    }
    Ok(db)
}

/// Packages of a Berkeley DB `Packages`.
pub fn parse_bdb(bytes: &[u8]) -> Result<RpmDb, RpmDbError> {
    let mut db = RpmDb::default();
    bdb::for_each(bytes, |key, value, big_endian| {
        // Record 0 is rpm's next-instance counter, not a header.
        let hnum = <[u8; 4]>::try_from(key).ok().map(|k| {
            if big_endian {
                u32::from_be_bytes(k)
            } else {
                u32::from_le_bytes(k)
            }
        });
        if hnum != Some(0) {
            db.add_header(value);
        }
    })?;
    Ok(db)
}

/// Packages of an ndb `Packages.db`.
pub fn parse_ndb(bytes: &[u8]) -> Result<RpmDb, RpmDbError> {
    let mut db = RpmDb::default();
    ndb::for_each(bytes, |blob| db.add_header(blob))?;
    Ok(db)
}

/// The package record of one header and the Python metadata directories it owns;
/// `None` for entries that are not software (imported signing keys).
fn package_of(blob: &[u8]) -> Result<Option<(Package, Vec<String>)>, HeaderError> {
    let h = Header::parse(blob)?;
    let name = h
        .string(header::NAME)?
        .ok_or(HeaderError::Missing(header::NAME))?;
    if name == "gpg-pubkey" {
        return Ok(None);
    }
    let version = h
        .string(header::VERSION)?
        .ok_or(HeaderError::Missing(header::VERSION))?;
    let release = h.string(header::RELEASE)?;
    let epoch = h.int32(header::EPOCH)?;
    let vr = match &release {
        Some(r) if !r.is_empty() => format!("{version}-{r}"),
        _ => version.to_string(),
    };
    let epoch_prefix = epoch.map(|e| format!("{e}:")).unwrap_or_default();
    let mut p = package(PackageType::Rpm, &name, &format!("{epoch_prefix}{vr}"));
    p.arch = h
        .string(header::ARCH)?
        .map(|a| a.into_owned())
        .filter(|a| !a.is_empty());
    p.licenses = h
        .string(header::LICENSE)?
        .map(|l| l.into_owned())
        .filter(|l| !l.is_empty())
        .into_iter()
        .collect();
    let source = h.string(header::SOURCERPM)?;
    match source.as_deref().and_then(split_source_rpm) {
        Some((src_name, src_vr)) => {
            p.source_name = Some(src_name.to_string());
            // A subpackage with its own version (perl-Carp from perl's source rpm):
            // advisories on the source speak of the source's version. The file name
            // carries no epoch; the binary's is the best available (as Grype does).
            if src_vr != vr {
                p.source_version = Some(format!("{epoch_prefix}{src_vr}"));
            }
        }
        None => p.source_name = Some(name.to_string()),
    }
    let mut dirs: Vec<String> = h
        .files_where(|dir, base| {
            is_python_meta(base)
                || is_python_meta(dir.trim_end_matches('/'))
                || is_gemspec(base)
                || base == "package.json"
        })?
        .into_iter()
        .filter_map(|path| {
            // `…/x.dist-info` (or `x.gemspec`) itself, or the parent of a file inside it.
            let path = path.trim_start_matches('/');
            let (dir, base) = path.rsplit_once('/')?;
            let d = if is_python_meta(base) || is_gemspec(base) || base == "package.json" {
                path
            } else {
                dir
            };
            Some(d.to_string())
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    Ok(Some((p, dirs)))
}

fn is_python_meta(name: &str) -> bool {
    name.ends_with(".dist-info") || name.ends_with(".egg-info") || name.ends_with(".egg")
}

/// Ruby's own gems (`specifications/default/*.gemspec`) ship in the distro's ruby
/// package.
fn is_gemspec(name: &str) -> bool {
    name.ends_with(".gemspec")
}

/// `openssl-3.0.7-27.el9.src.rpm` → (`openssl`, `3.0.7-27.el9`).
fn split_source_rpm(file: &str) -> Option<(&str, &str)> {
    let stem = file
        .strip_suffix(".src.rpm")
        .or_else(|| file.strip_suffix(".nosrc.rpm"))?;
    let (rest, release) = stem.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return None;
    }
    Some((name, &stem[name.len() + 1..]))
}

#[cfg(test)]
mod tests {
    use super::header::tests::{build, entry, s};
    use super::*;

    #[test]
    fn ruby_default_gem_specifications_are_owned() {
        use super::header::tests::{i32s, sa};
        use super::header::*;
        // rpm's header value types (private to the header reader).
        const TYPE_INT32: u32 = 4;
        const TYPE_STRING: u32 = 6;
        const TYPE_STRING_ARRAY: u32 = 8;
        let blob = build(&[
            entry(NAME, TYPE_STRING, s("rubygem-json")),
            entry(VERSION, TYPE_STRING, s("2.5.1")),
            entry(RELEASE, TYPE_STRING, s("160.el9")),
            entry(SOURCERPM, TYPE_STRING, s("ruby-3.0.7-160.el9.src.rpm")),
            entry(DIRINDEXES, TYPE_INT32, i32s(&[0, 1])),
            entry(
                BASENAMES,
                TYPE_STRING_ARRAY,
                sa(&["json-2.5.1.gemspec", "json.rb"]),
            ),
            entry(
                DIRNAMES,
                TYPE_STRING_ARRAY,
                sa(&[
                    "/usr/share/gems/specifications/default/",
                    "/usr/share/ruby/",
                ]),
            ),
        ]);
        let (_, owned) = package_of(&blob).unwrap().unwrap();
        assert_eq!(
            owned,
            ["usr/share/gems/specifications/default/json-2.5.1.gemspec"]
        );
    }

    #[test]
    fn package_record_from_header() {
        let blob = header::tests::sample();
        let (p, dirs) = package_of(&blob).unwrap().unwrap();
        assert_eq!(p.name, "openssl-libs");
        assert_eq!(p.version, "1:3.0.7-27.el9");
        assert_eq!(p.kind, PackageType::Rpm);
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
        assert_eq!(p.source_name.as_deref(), Some("openssl"));
        assert_eq!(p.source_version, None);
        assert_eq!(p.licenses, ["ASL 2.0"]);
        assert_eq!(
            dirs,
            ["usr/lib/python3.9/site-packages/six-1.15.0.dist-info"]
        );
    }

    /// A header as rpm 4.18 stored it (see tests/fixtures/rpm/README.md).
    const REAL_HEADER: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rpm/python3-pwtest.header"
    ));

    #[test]
    fn real_header() {
        let (p, dirs) = package_of(REAL_HEADER).unwrap().unwrap();
        assert_eq!(p.name, "python3-pwtest");
        assert_eq!(p.version, "2:1.2.3-4.el9");
        assert_eq!(p.arch.as_deref(), Some("noarch"));
        assert_eq!(p.source_name.as_deref(), Some("pwtest"));
        assert_eq!(p.source_version, None);
        assert_eq!(p.licenses, ["MIT"]);
        assert_eq!(
            dirs,
            ["usr/lib/python3.9/site-packages/pwtest-1.0.dist-info"]
        );
        // Cut anywhere: an error (the declared lengths no longer fit), never a panic.
        for n in 0..REAL_HEADER.len() {
            assert!(package_of(&REAL_HEADER[..n]).is_err(), "cut at {n}");
        }
        // Any byte changed: an error or some record, never a panic.
        for at in 0..REAL_HEADER.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut b = REAL_HEADER.to_vec();
                b[at] ^= x;
                let _ = package_of(&b);
            }
        }
    }

    #[test]
    fn signing_keys_and_subpackage_versions() {
        let key = build(&[
            entry(header::NAME, 6, s("gpg-pubkey")),
            entry(header::VERSION, 6, s("fd431d51")),
            entry(header::RELEASE, 6, s("4ae0493b")),
        ]);
        assert!(package_of(&key).unwrap().is_none());
        let carp = build(&[
            entry(header::NAME, 6, s("perl-Carp")),
            entry(header::VERSION, 6, s("1.50")),
            entry(header::RELEASE, 6, s("460.el9")),
            entry(header::SOURCERPM, 6, s("perl-5.32.1-480.el9.src.rpm")),
        ]);
        let (p, _) = package_of(&carp).unwrap().unwrap();
        assert_eq!(p.version, "1.50-460.el9");
        assert_eq!(p.source_name.as_deref(), Some("perl"));
        assert_eq!(p.source_version.as_deref(), Some("5.32.1-480.el9"));
        // no NAME: an error, not a nameless package
        let anon = build(&[entry(header::VERSION, 6, s("1"))]);
        assert!(package_of(&anon).is_err());
    }

    #[test]
    fn source_rpm_names() {
        assert_eq!(
            split_source_rpm("openssl-3.0.7-27.el9.src.rpm"),
            Some(("openssl", "3.0.7-27.el9"))
        );
        assert_eq!(
            split_source_rpm("python-six-1.15.0-9.el9.src.rpm"),
            Some(("python-six", "1.15.0-9.el9"))
        );
        assert_eq!(
            split_source_rpm("openssl-1_1-1.1.1l-150500.17.34.1.src.rpm"),
            Some(("openssl-1_1", "1.1.1l-150500.17.34.1"))
        );
        assert_eq!(split_source_rpm("x.src.rpm"), None);
        assert_eq!(split_source_rpm("-1-2.src.rpm"), None);
        assert_eq!(split_source_rpm("foo-1-2.rpm"), None);
    }

    #[test]
    fn bdb_database_with_counter_record() {
        let blob = header::tests::sample();
        let db = bdb::tests::build(
            4096,
            &[
                (0u32.to_le_bytes().to_vec(), 5u32.to_le_bytes().to_vec()),
                (1u32.to_le_bytes().to_vec(), blob.clone()),
                (2u32.to_le_bytes().to_vec(), blob[..40].to_vec()),
            ],
        );
        let r = parse_bdb(&db).unwrap();
        assert_eq!(r.packages.len(), 1);
        assert_eq!(r.packages[0].name, "openssl-libs");
        assert_eq!(r.bad_headers, 1);
        assert!(r.first_error.is_some());
    }

    /// An sqlite database as rpm lays it out (schema from rpm 4.18's sqlite backend).
    fn sqlite_db(schema: &str, blobs: &[Vec<u8>]) -> Vec<u8> {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(schema).unwrap();
        for b in blobs {
            c.execute("INSERT INTO Packages(blob) VALUES (?1)", [b])
                .unwrap();
        }
        c.serialize(rusqlite::MAIN_DB).unwrap().to_vec()
    }

    const RPM_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL);";

    #[test]
    fn sqlite_database() {
        let blob = header::tests::sample();
        let mut db = sqlite_db(RPM_SCHEMA, &[blob.clone(), b"\0\0\0\x01".to_vec()]);
        // as rpm leaves it: WAL mode marked in the header
        db[18] = 2;
        db[19] = 2;
        let r = parse_sqlite(&db).unwrap();
        assert_eq!(r.packages.len(), 1);
        assert_eq!(r.packages[0].version, "1:3.0.7-27.el9");
        assert_eq!(r.bad_headers, 1);
    }

    #[test]
    fn hostile_sqlite_databases() {
        // a view computing rows without end is refused before it runs
        let view = sqlite_db(
            "CREATE VIEW Packages AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x AS hnum, zeroblob(100) AS blob FROM c;",
            &[],
        );
        assert!(matches!(
            parse_sqlite(&view),
            Err(RpmDbError::NoPackagesTable(Some(k))) if k == "view"
        ));
        assert!(matches!(
            parse_sqlite(&sqlite_db("CREATE TABLE other(x);", &[])),
            Err(RpmDbError::NoPackagesTable(None))
        ));
        // a generated column that would build a huge value hits the length limit
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE Packages(hnum INTEGER PRIMARY KEY, n INTEGER, blob AS (zeroblob(n)));
             INSERT INTO Packages(n) VALUES (100000000);",
        )
        .unwrap();
        let db = c.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
        assert!(matches!(parse_sqlite(&db), Err(RpmDbError::Sqlite(_))));
        // a row whose "blob" is a number: counted as an unreadable header
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(RPM_SCHEMA).unwrap();
        c.execute_batch("INSERT INTO Packages(blob) VALUES (42);")
            .unwrap();
        let db = c.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
        let r = parse_sqlite(&db).unwrap();
        assert_eq!((r.packages.len(), r.bad_headers), (0, 1));
        assert_eq!(r.first_error, Some(HeaderError::NotBlob));
        // every truncation and a flipped byte at each of many places: an error or a
        // partial answer, never a panic
        let good = sqlite_db(RPM_SCHEMA, &vec![header::tests::sample(); 3]);
        for n in (0..good.len()).step_by(97) {
            let _ = parse_sqlite(&good[..n]);
        }
        for at in (100..good.len()).step_by(13) {
            let mut b = good.clone();
            b[at] ^= 0x5a;
            let _ = parse_sqlite(&b);
        }
    }

    #[test]
    fn ndb_database() {
        let r = parse_ndb(&ndb::tests::build(&[REAL_HEADER.to_vec(), vec![0; 3]])).unwrap();
        assert_eq!(r.packages.len(), 1);
        assert_eq!(r.packages[0].name, "python3-pwtest");
        assert_eq!(r.python_dirs.len(), 1);
        assert_eq!(r.bad_headers, 1);
    }

    #[test]
    fn not_databases() {
        assert!(matches!(parse_sqlite(b"junk"), Err(RpmDbError::NotSqlite)));
        let mut fake = b"SQLite format 3\0".to_vec();
        fake.resize(4096, 0xee);
        assert!(parse_sqlite(&fake).is_err());
        assert!(parse_bdb(&[0u8; 4096]).is_err());
        assert!(parse_bdb(b"").is_err());
        assert!(parse_ndb(&[0u8; 4096]).is_err());
    }
}
