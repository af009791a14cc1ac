//! Schema migrations, tracked by `PRAGMA user_version`.

use rusqlite::Connection;

use crate::StoreError;

/// Entity tables (all of the same shape).
pub const ENTITY_TABLES: &[&str] = &[
    "load_balancers",
    "listeners",
    "pools",
    "members",
    "health_monitors",
    "l7policies",
    "l7rules",
    "amphorae",
];

const V1_OTHER: &str = "
CREATE TABLE quotas (project_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE listener_stats (
    listener_id TEXT NOT NULL,
    amphora_id TEXT NOT NULL,
    bytes_in INTEGER NOT NULL DEFAULT 0,
    bytes_out INTEGER NOT NULL DEFAULT 0,
    active_connections INTEGER NOT NULL DEFAULT 0,
    total_connections INTEGER NOT NULL DEFAULT 0,
    request_errors INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (listener_id, amphora_id)
);
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    lb_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    failed_step INTEGER,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX jobs_state ON jobs (state, seq);
CREATE TABLE job_steps (
    job_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    output TEXT NOT NULL,
    reverted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, step)
);
";

/// Brings the schema to the newest version, in one `BEGIN IMMEDIATE` transaction that also
/// reads the version: processes opening one new database together (api, workers) migrate it
/// once, the others wait for the lock and then find it done.
pub(crate) fn migrate(c: &Connection) -> Result<(), StoreError> {
    c.execute_batch("BEGIN IMMEDIATE")?;
    match migrate_locked(c) {
        Ok(()) => Ok(c.execute_batch("COMMIT")?),
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_locked(c: &Connection) -> Result<(), StoreError> {
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < 1 {
        let mut sql = String::new();
        for t in ENTITY_TABLES {
            sql.push_str(&format!(
                "CREATE TABLE {t} (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    project_id TEXT NOT NULL,
                    lb_id TEXT NOT NULL,
                    parent_id TEXT NOT NULL,
                    provisioning_status TEXT NOT NULL,
                    operating_status TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    updated_at TEXT,
                    body TEXT NOT NULL
                );
                CREATE INDEX {t}_lb ON {t} (lb_id);
                CREATE INDEX {t}_parent ON {t} (parent_id);
                CREATE INDEX {t}_project ON {t} (project_id);\n"
            ));
        }
        sql.push_str(V1_OTHER);
        sql.push_str("PRAGMA user_version = 1;");
        c.execute_batch(&sql)?;
    }
    if version < 2 {
        c.execute_batch(
            "             CREATE TABLE amphora_health (
                 amphora_id TEXT PRIMARY KEY,
                 last_update INTEGER NOT NULL,
                 seq INTEGER NOT NULL,
                 busy INTEGER NOT NULL DEFAULT 0
             );
             PRAGMA user_version = 2;",
        )?;
    }
    if version < 3 {
        c.execute_batch(
            "             CREATE TABLE amphora_claims (
                 job_id TEXT NOT NULL,
                 slot TEXT NOT NULL,
                 amphora_id TEXT NOT NULL,
                 PRIMARY KEY (job_id, slot)
             );
             CREATE INDEX amphorae_status ON amphorae (provisioning_status);
             PRAGMA user_version = 3;",
        )?;
    }
    if version < 4 {
        // `locks_lb`: the job holds its load balancer's lock (`Job::locks_lb`); jobs of one
        // load balancer are claimed in order (`jobs_lb`). `vip_allocations`: a VIP being
        // allocated for a load balancer not yet committed (the API's intent, see
        // `Tx::vip_intent`).
        c.execute_batch(
            "             ALTER TABLE jobs ADD COLUMN locks_lb INTEGER NOT NULL DEFAULT 1;
             CREATE INDEX jobs_lb ON jobs (lb_id, seq);
             CREATE TABLE vip_allocations (
                 lb_id TEXT PRIMARY KEY,
                 created_ms INTEGER NOT NULL
             );
             PRAGMA user_version = 4;",
        )?;
    }
    Ok(())
}
