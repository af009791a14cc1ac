//! rocta's store: the desired state of every load balancer, the job queue and its step journal,
//! quotas and statistics, in one database so that a state change and its job commit together.
//!
//! Each entity table has the same shape: indexed columns (`id`, `project_id`, `lb_id`,
//! `parent_id`, the two statuses, `created_at`, `updated_at`) and the entity itself as a JSON
//! document (`body`). Statuses and `updated_at` live in columns so the worker and the health
//! manager change them without rewriting documents; they override the document's copy on read.
//! Attribute filtering and sorting happen above the store (the API filters on wire names), so the
//! SQL stays a portable subset for the PostgreSQL/MySQL backends to come.
//!
//! Concurrency: one writer connection (SQLite has one writer; write transactions are `BEGIN
//! IMMEDIATE`, so two processes on one file queue instead of deadlocking) and a few reader
//! connections (WAL lets readers run beside the writer). Queries take microseconds, so they run
//! inline on the calling task instead of paying a thread hand-off.
//!
//! Layout: `Store` (connections, `read`/`write` transactions), `Tx` (queries, in `entity`,
//! `jobs` and `misc`), `schema` (migrations).

mod entity;
mod jobs;
mod misc;
mod schema;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

pub use entity::{Cols, Entity, Filter};
pub use jobs::{JobRow, JobState, StepRow};
pub use schema::ENTITY_TABLES;

/// Store errors. A caller maps them to "try again later" (busy) or an internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("stored document of {table} {id} is unreadable: {source}")]
    Corrupt {
        table: &'static str,
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode {0}: {1}")]
    Encode(&'static str, serde_json::Error),
    #[error("job {0} is owned by another worker")]
    LeaseLost(String),
    #[error("opening the database at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Lock contention with another process: retrying later can succeed.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Db(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// Queries inside one transaction.
pub struct Tx<'a> {
    conn: &'a Connection,
}

const READERS: usize = 4;

impl Store {
    /// Opens (creating and migrating if needed) the SQLite database at `path`.
    /// `synchronous` is `off`, `normal` or `full` (see `[database] sqlite_synchronous`).
    pub fn open_sqlite(path: &Path, synchronous: &str) -> Result<Store, StoreError> {
        let open = |write: bool| -> Result<Connection, StoreError> {
            let c = Connection::open(path).map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
            c.busy_timeout(Duration::from_secs(10))?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", synchronous)?;
            c.pragma_update(None, "foreign_keys", "OFF")?;
            if write {
                schema::migrate(&c)?;
            }
            c.set_prepared_statement_cache_capacity(128);
            Ok(c)
        };
        let writer = open(true)?;
        let readers = (0..READERS)
            .map(|_| open(false).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    /// Runs `f` in a read transaction (a consistent snapshot).
    pub async fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let start = self.inner.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.inner.readers.len();
        // Take a free reader if there is one, else wait for the next in turn.
        let mut guard = (0..n)
            .find_map(|k| self.inner.readers[(start + k) % n].try_lock().ok())
            .unwrap_or_else(|| lock(&self.inner.readers[start % n]));
        let tx = guard
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let out = f(&Tx { conn: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` in a write transaction: committed if `f` returns `Ok`, rolled back otherwise.
    pub async fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut guard = lock(&self.inner.writer);
        let tx = guard
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&Tx { conn: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }
}

/// A poisoned lock only means another request panicked mid-transaction; SQLite rolled that
/// transaction back when its guard dropped, so the connection is still sound.
fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
