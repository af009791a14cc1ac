//! The schema: one description rendered per dialect, its version in `rocta_schema_version`,
//! and the upgrades (`rocta db upgrade`).
//!
//! Version 5 is the first schema on every backend; 6 adds the catalog (flavors, availability
//! zones and their profiles); 7 the history of ended jobs (`job_history`). SQLite databases written by earlier releases carry their
//! version in `PRAGMA user_version` (1–4) and are brought to 5 by the steps they missed, then
//! on as every backend; a new database of any dialect is created at the current version.

use crate::sql::{args, Dialect};
use crate::{Store, StoreError, Tx};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: i64 = 7;

/// Entity tables (all of the same shape).
pub const ENTITY_TABLES: [crate::entity::Table; 8] = crate::entity::Table::ALL;

/// What a database holds, against what this build expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// No rocta tables: the current schema is created on first open.
    Empty,
    Current,
    /// An older schema: `rocta db upgrade` brings it up.
    Older(i64),
    /// A newer schema than this build knows: a newer rocta wrote it.
    Newer(i64),
    /// rocta's tables without a version: not a database rocta can vouch for.
    Unknown,
}

impl SchemaState {
    /// One line saying what is wrong and what fixes it.
    pub fn explain(&self) -> String {
        match self {
            SchemaState::Empty | SchemaState::Current => format!("schema version {SCHEMA_VERSION}"),
            SchemaState::Older(v) => format!(
                "the database schema is version {v}, this rocta needs {SCHEMA_VERSION}: \
                 run `rocta db upgrade` (with the same --config/--data-dir) first"
            ),
            SchemaState::Newer(v) => format!(
                "the database schema is version {v}, newer than this rocta's {SCHEMA_VERSION}: \
                 a newer rocta upgraded it; run that release (schemas are not downgraded)"
            ),
            SchemaState::Unknown => "the database holds tables named like rocta's but no \
                 schema version: point [database] connection at rocta's own database"
                .to_string(),
        }
    }
}

/// The current schema, with type placeholders rendered per dialect by `render`.
const TABLES: &str = "
CREATE TABLE quotas (project_id {P} NOT NULL PRIMARY KEY, body {L} NOT NULL){END};
CREATE TABLE locks (name {P} NOT NULL PRIMARY KEY, n {I} NOT NULL){END};
CREATE TABLE listener_stats (
    listener_id {K} NOT NULL,
    amphora_id {K} NOT NULL,
    bytes_in {I} NOT NULL DEFAULT 0,
    bytes_out {I} NOT NULL DEFAULT 0,
    active_connections {I} NOT NULL DEFAULT 0,
    total_connections {I} NOT NULL DEFAULT 0,
    request_errors {I} NOT NULL DEFAULT 0,
    PRIMARY KEY (listener_id, amphora_id)
){END};
CREATE TABLE jobs (
    seq {SEQ},
    id {K} NOT NULL UNIQUE,
    name {T} NOT NULL,
    lb_id {K} NOT NULL,
    payload {L} NOT NULL,
    state {S} NOT NULL,
    owner {T},
    lease_until {I} NOT NULL DEFAULT 0,
    failed_step {I},
    error {L},
    attempts {I} NOT NULL DEFAULT 0,
    created_at {T} NOT NULL,
    updated_at {T} NOT NULL,
    locks_lb {I} NOT NULL DEFAULT 1
){END};
CREATE INDEX jobs_state ON jobs (state, seq);
CREATE INDEX jobs_lb ON jobs (lb_id, seq);
CREATE TABLE job_steps (
    job_id {K} NOT NULL,
    step {I} NOT NULL,
    name {T} NOT NULL,
    output {L} NOT NULL,
    reverted {I} NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, step)
){END};
CREATE TABLE amphora_health (
    amphora_id {K} NOT NULL PRIMARY KEY,
    last_update {I} NOT NULL,
    seq {I} NOT NULL,
    busy {I} NOT NULL DEFAULT 0
){END};
CREATE TABLE amphora_claims (
    job_id {K} NOT NULL,
    slot {T} NOT NULL,
    amphora_id {K} NOT NULL,
    PRIMARY KEY (job_id, slot)
){END};
CREATE TABLE vip_allocations (lb_id {K} NOT NULL PRIMARY KEY, created_ms {I} NOT NULL){END};
CREATE INDEX amphorae_status ON amphorae (provisioning_status);
CREATE TABLE rocta_schema_version (version {I} NOT NULL){END};
";

/// Version 6: the catalog (`catalog.rs`).
const V6: &str = "
CREATE TABLE catalog (
    seq {SEQ},
    kind {S} NOT NULL,
    id {P} NOT NULL,
    name {P} NOT NULL,
    refers_to {P} NOT NULL,
    body {L} NOT NULL
){END};
CREATE UNIQUE INDEX catalog_key ON catalog (kind, id);
CREATE INDEX catalog_refers ON catalog (kind, refers_to);
";

/// Version 7: ended jobs, with the steps they ran, for the operator (`Tx::job_history`);
/// housekeeping purges them.
const V7: &str = "
CREATE TABLE job_history (
    seq {SEQ},
    id {K} NOT NULL UNIQUE,
    name {S} NOT NULL,
    lb_id {K} NOT NULL,
    payload {L} NOT NULL,
    outcome {S} NOT NULL,
    error {L},
    failed_step {I},
    steps {L} NOT NULL,
    attempts {I} NOT NULL,
    created_at {T} NOT NULL,
    finished_at {T} NOT NULL
){END};
CREATE INDEX job_history_finished ON job_history (finished_at);
";

const ENTITY: &str = "
CREATE TABLE {t} (
    seq {SEQ},
    id {K} NOT NULL UNIQUE,
    project_id {P} NOT NULL,
    lb_id {K} NOT NULL,
    parent_id {K} NOT NULL,
    provisioning_status {S} NOT NULL,
    operating_status {S} NOT NULL,
    created_at {T} NOT NULL,
    updated_at {T},
    body {L} NOT NULL
){END};
CREATE INDEX {t}_lb ON {t} (lb_id);
CREATE INDEX {t}_parent ON {t} (parent_id);
CREATE INDEX {t}_project ON {t} (project_id);
";

/// `sql` with its type placeholders in `d`'s types, split into statements.
fn render(d: Dialect, sql: &str) -> Vec<String> {
    let types: &[(&str, &str)] = match d {
        Dialect::Sqlite => &[
            ("{SEQ}", "INTEGER PRIMARY KEY AUTOINCREMENT"),
            ("{K}", "TEXT"),
            ("{P}", "TEXT"),
            ("{S}", "TEXT"),
            ("{T}", "TEXT"),
            ("{L}", "TEXT"),
            ("{I}", "INTEGER"),
            ("{END}", ""),
        ],
        Dialect::Postgres => &[
            ("{SEQ}", "BIGSERIAL PRIMARY KEY"),
            ("{K}", "TEXT"),
            ("{P}", "TEXT"),
            ("{S}", "TEXT"),
            ("{T}", "TEXT"),
            ("{L}", "TEXT"),
            ("{I}", "BIGINT"),
            ("{END}", ""),
        ],
        // Keys must be VARCHAR to be indexed; `utf8mb4_bin` compares like the others do
        // (case-sensitive).
        Dialect::Mysql => &[
            ("{SEQ}", "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"),
            ("{K}", "VARCHAR(64)"),
            ("{P}", "VARCHAR(255)"),
            ("{S}", "VARCHAR(32)"),
            ("{T}", "VARCHAR(255)"),
            ("{L}", "LONGTEXT"),
            ("{I}", "BIGINT"),
            (
                "{END}",
                " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            ),
        ],
    };
    let mut s = sql.to_string();
    for (k, v) in types {
        s = s.replace(k, v);
    }
    s.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Every statement creating the current schema.
fn create_all(d: Dialect) -> Vec<String> {
    let mut out = Vec::new();
    for t in ENTITY_TABLES {
        out.extend(render(d, &ENTITY.replace("{t}", t.name())));
    }
    out.extend(render(d, TABLES));
    out.extend(render(d, V6));
    out.extend(render(d, V7));
    out
}

/// The steps from version `from` (5 or later) to the current one.
fn steps_from(d: Dialect, from: i64) -> Vec<String> {
    let mut s = Vec::new();
    if from < 6 {
        s.extend(render(d, V6));
    }
    if from < 7 {
        s.extend(render(d, V7));
    }
    s
}

/// The steps from an SQLite database of an earlier release (`user_version` 1–4) to 5.
fn sqlite_legacy_steps(from: i64) -> Vec<String> {
    let mut s: Vec<String> = Vec::new();
    if from < 2 {
        s.push(
            "CREATE TABLE amphora_health (amphora_id TEXT PRIMARY KEY, last_update INTEGER \
             NOT NULL, seq INTEGER NOT NULL, busy INTEGER NOT NULL DEFAULT 0)"
                .into(),
        );
    }
    if from < 3 {
        s.push(
            "CREATE TABLE amphora_claims (job_id TEXT NOT NULL, slot TEXT NOT NULL, \
             amphora_id TEXT NOT NULL, PRIMARY KEY (job_id, slot))"
                .into(),
        );
        s.push("CREATE INDEX amphorae_status ON amphorae (provisioning_status)".into());
    }
    if from < 4 {
        s.push("ALTER TABLE jobs ADD COLUMN locks_lb INTEGER NOT NULL DEFAULT 1".into());
        s.push("CREATE INDEX jobs_lb ON jobs (lb_id, seq)".into());
        s.push(
            "CREATE TABLE vip_allocations (lb_id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL)"
                .into(),
        );
    }
    // 5: statuses only in their columns; the lock rows; the version table.
    for t in ENTITY_TABLES {
        let keys = match t {
            crate::entity::Table::Amphorae => "'$.status'",
            _ => "'$.provisioning_status', '$.operating_status'",
        };
        s.push(format!(
            "UPDATE {} SET body = json_remove(body, {keys}, '$.updated_at')",
            t.name()
        ));
    }
    s.push("CREATE TABLE locks (name TEXT NOT NULL PRIMARY KEY, n INTEGER NOT NULL)".into());
    s.push("CREATE TABLE rocta_schema_version (version INTEGER NOT NULL)".into());
    s
}

impl Tx<'_> {
    pub(crate) fn dialect_probe(&self) -> Result<(), StoreError> {
        self.rows("SELECT 1", &[])?;
        Ok(())
    }

    fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        let sql = match self.dialect {
            Dialect::Sqlite => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            Dialect::Postgres => {
                "SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = ?"
            }
            Dialect::Mysql => {
                "SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = ?"
            }
        };
        Ok(self.row(sql, args![name])?.is_some())
    }

    fn schema_state(&self) -> Result<SchemaState, StoreError> {
        if self.has_table("rocta_schema_version")? {
            let v = self
                .row("SELECT MAX(version) FROM rocta_schema_version", &[])?
                .and_then(|r| r.opt_int(0).ok().flatten());
            return Ok(match v {
                None => SchemaState::Unknown,
                Some(v) if v == SCHEMA_VERSION => SchemaState::Current,
                Some(v) if v < SCHEMA_VERSION => SchemaState::Older(v),
                Some(v) => SchemaState::Newer(v),
            });
        }
        if self.dialect == Dialect::Sqlite {
            let v = self
                .row("PRAGMA user_version", &[])?
                .map_or(Ok(0), |r| r.int(0))?;
            if v > 0 {
                return Ok(SchemaState::Older(v));
            }
        }
        Ok(if self.has_table("load_balancers")? {
            SchemaState::Unknown
        } else {
            SchemaState::Empty
        })
    }

    fn upgrade_locked(&self) -> Result<(i64, i64), StoreError> {
        let d = self.dialect;
        let state = self.schema_state()?;
        let (from, steps) = match state {
            SchemaState::Current => return Ok((SCHEMA_VERSION, SCHEMA_VERSION)),
            SchemaState::Empty => (0, create_all(d)),
            SchemaState::Older(v) if d == Dialect::Sqlite && (1..5).contains(&v) => {
                let mut steps = sqlite_legacy_steps(v);
                steps.extend(steps_from(d, 5));
                (v, steps)
            }
            SchemaState::Older(v) if v >= 5 => (v, steps_from(d, v)),
            other => return Err(StoreError::Schema(other.explain())),
        };
        for s in steps {
            self.exec(&s, &[])?;
        }
        self.schema_version_set(SCHEMA_VERSION)?;
        Ok((from, SCHEMA_VERSION))
    }

    /// Records the schema version (the last step of an upgrade; tests play another release
    /// with it).
    pub fn schema_version_set(&self, v: i64) -> Result<(), StoreError> {
        self.exec("DELETE FROM rocta_schema_version", &[])?;
        self.exec(
            "INSERT INTO rocta_schema_version (version) VALUES (?)",
            args![v],
        )?;
        if self.dialect == Dialect::Sqlite {
            self.exec(&format!("PRAGMA user_version = {v}"), &[])?;
        }
        Ok(())
    }
}

impl Store {
    /// What the database holds against what this build expects.
    pub fn schema_state(&self) -> Result<SchemaState, StoreError> {
        self.blocking(false, |tx| tx.schema_state())
    }

    /// Brings the schema to the current version (creating it in an empty database); returns
    /// (from, to). Safe to run from several processes at once: the first upgrades under a
    /// lock (SQLite's write lock, a PostgreSQL advisory lock, a MySQL named lock), the others
    /// then find it current.
    pub fn upgrade(&self) -> Result<(i64, i64), StoreError> {
        match self.dialect() {
            // DDL is transactional: the lock and the steps commit together.
            Dialect::Sqlite => self.blocking(true, |tx| tx.upgrade_locked()),
            Dialect::Postgres => self.blocking(true, |tx| {
                tx.exec("SELECT pg_advisory_xact_lock(7061727461)", &[])?;
                tx.upgrade_locked()
            }),
            // DDL commits by itself here: hold a named lock around the steps instead.
            Dialect::Mysql => self.blocking(true, |tx| {
                let got = tx
                    .row("SELECT GET_LOCK('rocta_schema', 120)", &[])?
                    .and_then(|r| r.opt_int(0).ok().flatten());
                if got != Some(1) {
                    return Err(StoreError::Unavailable(
                        "another process holds the schema lock (rocta_schema)".into(),
                    ));
                }
                let out = tx.upgrade_locked();
                let _ = tx.exec("DO RELEASE_LOCK('rocta_schema')", &[]);
                out
            }),
        }
    }
}
