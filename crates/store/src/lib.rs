//! rocta's store: the desired state of every load balancer, the job queue and its step journal,
//! quotas and statistics, in one database so that a state change and its job commit together.
//!
//! One contract, three backends: SQLite (the embedded default), PostgreSQL and MySQL/MariaDB,
//! chosen by Octavia's `[database] connection` URL (`Target::parse`). Queries are written once
//! in the SQL the three share (`sql`); migrations are per dialect (`schema`).
//!
//! Each entity table has the same shape: indexed columns (`id`, `project_id`, `lb_id`,
//! `parent_id`, the two statuses, `created_at`, `updated_at`) and the rest of the entity as a
//! JSON document (`body`). Statuses and `updated_at` live only in their columns: the worker and
//! the health manager move them with conditional `UPDATE`s, and reads put them back into the
//! entity (`entity`). Attribute filtering and sorting happen above the store (the API filters
//! on wire names).
//!
//! Concurrency: SQLite has one writer connection (write transactions are `BEGIN IMMEDIATE`, so
//! two processes on one file queue instead of deadlocking) and a few readers (WAL); its
//! queries take microseconds and run inline on the calling task. PostgreSQL and MySQL use a
//! bounded pool of connections; their transactions run under `block_in_place`, so a network
//! round trip never stalls the other tasks of an async worker thread (see ARCHITECTURE.md).
//! Reads are one snapshot (`REPEATABLE READ`); writes see the latest committed rows.
//!
//! Layout: `Store` (backends, `read`/`write`/`read_single`), `sql` (`Tx`, values, dialects),
//! `pg` and `my` (PostgreSQL and MySQL connections) on `pool`, queries in `entity`, `status`
//! (status moves), `jobs` and `misc`, `schema` (migrations and the schema version), `testing`
//! (throw-away databases for tests).

mod catalog;
mod entity;
mod jobs;
mod misc;
mod my;
mod pg;
mod pool;
mod schema;
mod sql;
mod status;
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

pub use catalog::{CatalogKind, CatalogRow, Profiled};
pub use entity::{Cols, Entity, Filter, RawRow, Table};
pub use jobs::{JobRow, JobState, JobView, QueueRow, StepRow};
pub use schema::{SchemaState, ENTITY_TABLES, SCHEMA_VERSION};
pub use sql::{Dialect, Tx};
pub use status::Move;

/// Store errors. A caller maps them to "try again later" (busy) or an internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("postgresql: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("mysql: {0}")]
    Mysql(#[from] mysql::Error),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected value from the database: {0}")]
    Decode(String),
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
    #[error("{0}")]
    Schema(String),
    #[error("invalid [database] connection {url:?}: {reason}")]
    Url { url: String, reason: String },
}

impl StoreError {
    /// Lock contention with another transaction, or the database out of reach: retrying later
    /// can succeed.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Db(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            StoreError::Postgres(e) => match e.code() {
                None => true,
                Some(c) => {
                    use tokio_postgres::error::SqlState;
                    [
                        SqlState::T_R_SERIALIZATION_FAILURE,
                        SqlState::T_R_DEADLOCK_DETECTED,
                        SqlState::LOCK_NOT_AVAILABLE,
                        SqlState::ADMIN_SHUTDOWN,
                        SqlState::CANNOT_CONNECT_NOW,
                        SqlState::TOO_MANY_CONNECTIONS,
                    ]
                    .contains(c)
                }
            },
            // 1205: lock wait timeout; 1213: deadlock; 1040: too many connections.
            StoreError::Mysql(mysql::Error::MySqlError(e)) => {
                matches!(e.code, 1205 | 1213 | 1040)
            }
            StoreError::Mysql(_) | StoreError::Unavailable(_) => true,
            _ => false,
        }
    }
}

/// Where the store lives: Octavia's `[database] connection`.
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
    Mysql(String),
}

impl Target {
    /// Parses a SQLAlchemy-style URL as Octavia's operators write them: `sqlite:///PATH`,
    /// `postgresql://…` (also `postgres://`, `postgresql+psycopg2://`), `mysql://…` (also
    /// `mysql+pymysql://`). Empty: SQLite at `default_sqlite`.
    pub fn parse(url: &str, default_sqlite: &Path) -> Result<Target, StoreError> {
        let bad = |reason: &str| StoreError::Url {
            url: redact(url),
            reason: reason.to_string(),
        };
        if url.is_empty() {
            return Ok(Target::Sqlite(default_sqlite.to_path_buf()));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected SCHEME://… (sqlite, postgresql or mysql)"))?;
        let dialect = scheme.split('+').next().unwrap_or_default();
        // SQLAlchemy query options that mean nothing to the Rust drivers.
        let rest = strip_params(
            rest,
            &["charset", "client_encoding", "plugin", "read_timeout"],
        );
        match dialect {
            "sqlite" => {
                if rest.is_empty() || rest == "/" {
                    return Err(bad("sqlite:///PATH needs a path"));
                }
                Ok(Target::Sqlite(PathBuf::from(rest)))
            }
            "postgresql" | "postgres" => {
                let u = format!("postgresql://{rest}");
                u.parse::<tokio_postgres::Config>()
                    .map_err(|e| bad(&e.to_string()))?;
                Ok(Target::Postgres(u))
            }
            "mysql" | "mariadb" => {
                let u = format!("mysql://{rest}");
                mysql::Opts::from_url(&u).map_err(|e| bad(&e.to_string()))?;
                Ok(Target::Mysql(u))
            }
            _ => Err(bad("unsupported database (sqlite, postgresql or mysql)")),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Target::Sqlite(_) => Dialect::Sqlite,
            Target::Postgres(_) => Dialect::Postgres,
            Target::Mysql(_) => Dialect::Mysql,
        }
    }

    /// The URL or path without its password, for logs.
    pub fn display(&self) -> String {
        match self {
            Target::Sqlite(p) => format!("sqlite://{}", p.display()),
            Target::Postgres(u) | Target::Mysql(u) => redact(u),
        }
    }
}

fn strip_params(rest: &str, drop: &[&str]) -> String {
    let Some((base, query)) = rest.split_once('?') else {
        return rest.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && !drop.contains(&kv.split('=').next().unwrap_or_default()))
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// `scheme://user:secret@host` as `scheme://user:***@host`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((cred, host)) if cred.contains(':') => {
            let user = cred.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct Options {
    /// SQLite `synchronous`: `off`, `normal` or `full` (`[database] sqlite_synchronous`).
    pub sqlite_synchronous: String,
    /// Connections per process to PostgreSQL or MySQL (`[database] max_pool_size`).
    pub max_pool_size: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sqlite_synchronous: "normal".into(),
            max_pool_size: 8,
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Backend>,
    observer: Option<Observer>,
}

/// Told of every transaction (or single statement) once it ended: its mode (`read`, `write`,
/// `single`), how long it took, whether it succeeded (committed, or read what it asked)
/// rather than ended with an error (the database's, or the caller's rules refusing), and the
/// kinds of the jobs it posted (`Tx::job_post`; only those of a committed transaction).
pub type Observer = Arc<dyn Fn(&'static str, Duration, bool, &[&'static str]) + Send + Sync>;

enum Backend {
    Sqlite(SqliteDb),
    Postgres(Box<pg::PgDb>),
    Mysql(Box<my::MyDb>),
}

struct SqliteDb {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

const READERS: usize = 4;

/// How long opening waits for other processes opening the same new SQLite file.
const SQLITE_OPEN_WAIT: Duration = Duration::from_secs(30);

impl Store {
    /// Opens the store for a role: an empty database gets the current schema; a database of
    /// another schema version is refused with what to run (`rocta db upgrade`).
    pub fn open(target: &Target, opts: &Options) -> Result<Store, StoreError> {
        let s = Store::connect(target, opts)?;
        match s.schema_state()? {
            SchemaState::Current => Ok(s),
            SchemaState::Empty => {
                s.upgrade()?;
                Ok(s)
            }
            other => Err(StoreError::Schema(other.explain())),
        }
    }

    /// Connects without looking at the schema (`rocta db upgrade`, `rocta db version`).
    pub fn connect(target: &Target, opts: &Options) -> Result<Store, StoreError> {
        let backend = match target {
            Target::Sqlite(path) => {
                Backend::Sqlite(SqliteDb::open(path, &opts.sqlite_synchronous)?)
            }
            Target::Postgres(url) => {
                let cfg = url
                    .parse::<tokio_postgres::Config>()
                    .map_err(StoreError::from)?;
                let db = pg::PgDb::new(cfg, opts.max_pool_size)?;
                Backend::Postgres(Box::new(db))
            }
            Target::Mysql(url) => {
                let base = mysql::Opts::from_url(url).map_err(|e| StoreError::Url {
                    url: redact(url),
                    reason: e.to_string(),
                })?;
                let o = mysql::OptsBuilder::from_opts(base)
                    .tcp_nodelay(true)
                    .stmt_cache_size(256)
                    // Matched rows, not changed rows, for conditional updates.
                    .additional_capabilities(mysql::consts::CapabilityFlags::CLIENT_FOUND_ROWS)
                    .init(vec![
                        "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
                        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                    ]);
                let db = my::MyDb::new(o.into(), opts.max_pool_size);
                Backend::Mysql(Box::new(db))
            }
        };
        let s = Store {
            inner: Arc::new(backend),
            observer: None,
        };
        // Reach the server now: a wrong URL or a server down is an error at start.
        s.blocking(false, |tx| tx.dialect_probe())?;
        Ok(s)
    }

    /// Opens (creating and migrating if needed) the SQLite database at `path`.
    pub fn open_sqlite(path: &Path, synchronous: &str) -> Result<Store, StoreError> {
        Store::open(
            &Target::Sqlite(path.to_path_buf()),
            &Options {
                sqlite_synchronous: synchronous.into(),
                ..Options::default()
            },
        )
    }

    pub fn dialect(&self) -> Dialect {
        match &*self.inner {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
            Backend::Mysql(_) => Dialect::Mysql,
        }
    }

    /// Subscribes `wake` to the jobs other processes post, where the backend can push them
    /// (PostgreSQL `LISTEN/NOTIFY`). Returns the flag that says whether the subscription is up
    /// (it reconnects by itself), or `None` where only polling finds them.
    pub fn listen_jobs(
        &self,
        wake: Arc<tokio::sync::Notify>,
    ) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        match &*self.inner {
            Backend::Postgres(db) => {
                let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
                db.listen_jobs(wake, up.clone());
                Some(up)
            }
            _ => None,
        }
    }

    /// Runs `f` in a read transaction (a consistent snapshot).
    pub async fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.run(Mode::Read, f)
    }

    /// Runs `f`, which issues exactly one query, outside any transaction: a single statement
    /// sees one snapshot by itself, and on a network database this saves the round trips of
    /// `BEGIN` and `COMMIT`. A second statement in `f` fails. `f` may run twice: on MySQL a
    /// statement that finds its connection closed by the server runs again on another.
    pub async fn read_single<T, E: From<StoreError>>(
        &self,
        f: impl Fn(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match &*self.inner {
            Backend::Mysql(db) => self.timed(Mode::Single, || off_runtime(|| db.run_single(f))),
            _ => self.run(Mode::Single, f),
        }
    }

    /// Claims a job (`Tx::job_claim`): on PostgreSQL one statement outside a transaction (one
    /// round trip, found or not), elsewhere in a write transaction.
    pub async fn job_claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<JobRow>, StoreError> {
        let claim = |tx: &Tx<'_>| tx.job_claim(owner, now_ms, lease_ms);
        match &*self.inner {
            Backend::Postgres(db) => {
                self.timed(Mode::Single, || off_runtime(|| db.run(Mode::Single, claim)))
            }
            _ => self.write(claim).await,
        }
    }

    /// Runs `f` in a write transaction: committed if `f` returns `Ok`, rolled back otherwise.
    pub async fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.run(Mode::Write, f)
    }

    /// A transaction from synchronous code (tools, migrations).
    pub fn blocking<T, E: From<StoreError>>(
        &self,
        write: bool,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.run(if write { Mode::Write } else { Mode::Read }, f)
    }

    /// This store with `o` told of every transaction (the metrics).
    pub fn with_observer(mut self, o: Observer) -> Store {
        self.observer = Some(o);
        self
    }

    fn run<T, E: From<StoreError>>(
        &self,
        mode: Mode,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.timed(mode, || match &*self.inner {
            Backend::Sqlite(db) => db.run(mode, f),
            Backend::Postgres(db) => off_runtime(|| db.run(mode, f)),
            Backend::Mysql(db) => off_runtime(|| db.run(mode, f)),
        })
    }

    /// Runs `f` (one transaction or statement in `mode`) and tells the observer.
    fn timed<T, E>(&self, mode: Mode, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let started = std::time::Instant::now();
        jobs::take_posted();
        let r = f();
        // The transaction ran on this thread (inline or under `block_in_place`), so the jobs
        // this thread posted since are its own.
        let posted = jobs::take_posted();
        if let Some(o) = &self.observer {
            let name = match mode {
                Mode::Read => "read",
                Mode::Write => "write",
                Mode::Single => "single",
            };
            let posted: &[&'static str] = if r.is_ok() { &posted } else { &[] };
            o(name, started.elapsed(), r.is_ok(), posted);
        }
        r
    }
}

/// How a closure meets the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A write transaction.
    Write,
    /// A read-only transaction on one snapshot.
    Read,
    /// One statement, no transaction.
    Single,
}

/// Runs a blocking database call so that it does not stall the async runtime: on a
/// multi-threaded runtime under `block_in_place` (the runtime hands this thread's other tasks
/// to another thread meanwhile); elsewhere (synchronous code, single-threaded test runtimes)
/// inline.
fn off_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl SqliteDb {
    fn open(path: &Path, synchronous: &str) -> Result<SqliteDb, StoreError> {
        let open = |write: bool| -> Result<Connection, StoreError> {
            let c = Connection::open(path).map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
            c.busy_timeout(Duration::from_secs(10))?;
            if write {
                c.pragma_update(None, "journal_mode", "WAL")?;
            }
            c.pragma_update(None, "synchronous", synchronous)?;
            c.pragma_update(None, "foreign_keys", "OFF")?;
            c.set_prepared_statement_cache_capacity(128);
            Ok(c)
        };
        // Processes opening one new file together can find it locked while another switches
        // it to WAL (SQLite does not wait on that lock): retry for a while.
        let deadline = std::time::Instant::now() + SQLITE_OPEN_WAIT;
        let writer = loop {
            match open(true) {
                Err(e) if e.is_busy() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => break r?,
            }
        };
        let readers = (0..READERS)
            .map(|_| open(false).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteDb {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    fn run<T, E: From<StoreError>>(
        &self,
        mode: Mode,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let write = mode == Mode::Write;
        let mut guard = if write {
            lock(&self.writer)
        } else {
            let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
            let n = self.readers.len();
            // Take a free reader if there is one, else wait for the next in turn.
            (0..n)
                .find_map(|k| self.readers[(start + k) % n].try_lock().ok())
                .unwrap_or_else(|| lock(&self.readers[start % n]))
        };
        if mode == Mode::Single {
            return f(&Tx::single(sql::Session::Sqlite(&guard), Dialect::Sqlite));
        }
        let behavior = if write {
            TransactionBehavior::Immediate
        } else {
            TransactionBehavior::Deferred
        };
        let t = guard
            .transaction_with_behavior(behavior)
            .map_err(StoreError::from)?;
        let out = f(&Tx::new(sql::Session::Sqlite(&t), Dialect::Sqlite))?;
        t.commit().map_err(StoreError::from)?;
        Ok(out)
    }
}

/// A poisoned lock only means another request panicked mid-transaction; SQLite rolled that
/// transaction back when its guard dropped, so the connection is still sound.
fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
