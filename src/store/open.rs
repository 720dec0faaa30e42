//! Opening the store file: integrity-checked open, and the quarantine of a damaged file
//! (moved to `verdicts.redb.corrupt-<time>`) followed by a rebuild from empty.

use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, ReadableTable, StorageError};

use super::{
    FILE_NAME, HISTORY, LATEST, LAYER_LRU, LAYER_TICK, LAYERS, META, REFS, SCHEMA_VERSION,
    StoreError, VERDICTS, db,
};

/// Why an open failed: damage we recover from by rebuilding, or a condition a rebuild
/// would not fix (or would make worse, like a second daemon on the same file).
enum OpenFailure {
    Corrupt(String),
    Fatal(StoreError),
}

/// redb's page cache; the store is small (verdicts and layer summaries), the default 1 GiB
/// would only be a ceiling but there is no reason to allow it.
const CACHE_BYTES: usize = 64 << 20;

pub(super) fn open_or_rebuild(
    state_dir: &Path,
) -> Result<(Database, PathBuf, Option<PathBuf>), StoreError> {
    std::fs::create_dir_all(state_dir).map_err(|source| StoreError::StateDir {
        path: state_dir.to_path_buf(),
        source,
    })?;
    let path = state_dir.join(FILE_NAME);
    match try_open(&path) {
        Ok(db) => Ok((db, path, None)),
        Err(OpenFailure::Fatal(e)) => Err(e),
        Err(OpenFailure::Corrupt(reason)) => {
            let aside = quarantine(&path)?;
            tracing::error!(
                store = %path.display(),
                moved_to = %aside.display(),
                %reason,
                "verdict store is corrupt: moved it aside and starting with an empty store (every image will be re-evaluated)"
            );
            match try_open(&path) {
                Ok(db) => Ok((db, path, Some(aside))),
                Err(OpenFailure::Fatal(e)) => Err(e),
                Err(OpenFailure::Corrupt(reason)) => Err(StoreError::Rebuild { path, reason }),
            }
        }
    }
}

fn try_open(path: &Path) -> Result<Database, OpenFailure> {
    // redb initialises an empty file as a new database, but we never leave one behind
    // after a successful open: a zero-length store is a damaged one (e.g. a file system
    // that lost the data of a file whose creation it kept). Moving it aside keeps the
    // evidence and the rebuild starts clean either way.
    match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => return Err(OpenFailure::Corrupt("the file is empty".into())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(OpenFailure::Fatal(StoreError::Open {
                path: path.to_path_buf(),
                source: DatabaseError::Storage(StorageError::Io(source)),
            }));
        }
    }
    // The integrity check verifies every page checksum, so an altered file fails with
    // `Corrupted` instead of being trusted. redb still asserts some invariants with
    // `debug_assert!` on open; a panic here means the file is damaged, not that we are.
    let opened = std::panic::catch_unwind(|| {
        redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .create(path)
    });
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => return Err(classify(path, e)),
        Err(_) => {
            return Err(OpenFailure::Corrupt(
                "the database library panicked reading it".into(),
            ));
        }
    };
    init_tables(&db).map_err(|e| match e {
        // A table of an unexpected type or a foreign schema means the file is not ours.
        StoreError::Database { .. } => OpenFailure::Corrupt(e.to_string()),
        other => OpenFailure::Corrupt(other.to_string()),
    })?;
    Ok(db)
}

fn classify(path: &Path, e: DatabaseError) -> OpenFailure {
    let fatal = |e| {
        OpenFailure::Fatal(StoreError::Open {
            path: path.to_path_buf(),
            source: e,
        })
    };
    match e {
        DatabaseError::DatabaseAlreadyOpen => {
            OpenFailure::Fatal(StoreError::InUse(path.to_path_buf()))
        }
        DatabaseError::Storage(StorageError::Corrupted(why)) => OpenFailure::Corrupt(why),
        DatabaseError::Storage(StorageError::Io(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            OpenFailure::Corrupt(io.to_string())
        }
        DatabaseError::UpgradeRequired(v) => {
            OpenFailure::Corrupt(format!("file format version {v} is not supported"))
        }
        DatabaseError::RepairAborted => OpenFailure::Corrupt("crash repair failed".into()),
        other => fatal(other),
    }
}

/// Creates every table (so readers never meet a missing one) and checks the schema.
fn init_tables(database: &Database) -> Result<(), StoreError> {
    let wtx = database.begin_write().map_err(db("begin write"))?;
    {
        let mut meta = wtx.open_table(META).map_err(db("open meta"))?;
        let found = meta
            .get("schema")
            .map_err(db("read schema"))?
            .map(|g| g.value().to_string());
        match found {
            None => {
                meta.insert("schema", SCHEMA_VERSION)
                    .map_err(db("write schema"))?;
            }
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => {
                return Err(StoreError::Rebuild {
                    path: PathBuf::from(FILE_NAME),
                    reason: format!("schema version {v:?}, expected {SCHEMA_VERSION:?}"),
                });
            }
        }
        wtx.open_table(VERDICTS).map_err(db("open verdicts"))?;
        wtx.open_table(LATEST).map_err(db("open latest"))?;
        wtx.open_table(REFS).map_err(db("open refs"))?;
        wtx.open_table(LAYERS).map_err(db("open layers"))?;
        wtx.open_table(LAYER_TICK).map_err(db("open layer_tick"))?;
        wtx.open_table(LAYER_LRU).map_err(db("open layer_lru"))?;
        wtx.open_table(HISTORY).map_err(db("open history"))?;
        wtx.open_table(super::INVENTORY)
            .map_err(db("open inventory"))?;
    }
    wtx.commit().map_err(db("commit tables"))?;
    Ok(())
}

/// Renames the damaged file to `verdicts.redb.corrupt-<UTC time>` (with a counter if
/// that exists) and syncs the directory so the rename survives a crash.
fn quarantine(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "unknown".into());
    let base = format!("{}.corrupt-{stamp}", path.display());
    let mut aside = PathBuf::from(&base);
    let mut n = 1;
    while aside.exists() {
        aside = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    let err = |source| StoreError::Quarantine {
        path: path.to_path_buf(),
        source,
    };
    std::fs::rename(path, &aside).map_err(err)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(aside)
}
