//! Quotas, listener statistics, amphora health and claims, VIP allocation intents, purge.

use rocta_model::time::Timestamp;
use rocta_model::{AmphoraStatus, Id, Quota, Stats};

use std::collections::{HashMap, HashSet};

use crate::entity::{fmt_ts, marks};
use crate::sql::{args, Row, Value, ROWS_PER_STATEMENT};
use crate::{StoreError, Tx};

fn quota_doc(project: &str, body: &str) -> Result<Quota, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        table: "quotas",
        id: project.to_string(),
        source,
    })
}

fn stats(r: &Row, from: usize) -> Result<Stats, StoreError> {
    Ok(Stats {
        bytes_in: r.int(from)?,
        bytes_out: r.int(from + 1)?,
        active_connections: r.int(from + 2)?,
        total_connections: r.int(from + 3)?,
        request_errors: r.int(from + 4)?,
    })
}

fn ids(rows: Vec<Row>) -> Result<Vec<Id>, StoreError> {
    Ok(rows
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .filter_map(|s| Id::parse_str(s).ok())
        .collect())
}

impl Tx<'_> {
    /// A project's quota overrides, if it has any.
    pub fn quota_get(&self, project: &str) -> Result<Option<Quota>, StoreError> {
        self.row(
            "SELECT body FROM quotas WHERE project_id = ?",
            args![project],
        )?
        .map(|r| quota_doc(project, &r.text(0)?))
        .transpose()
    }

    /// Every project that has overrides.
    pub fn quota_list(&self) -> Result<Vec<(String, Quota)>, StoreError> {
        self.rows(
            "SELECT project_id, body FROM quotas ORDER BY project_id",
            &[],
        )?
        .iter()
        .map(|r| {
            let p = r.text(0)?;
            let q = quota_doc(&p, &r.text(1)?)?;
            Ok((p, q))
        })
        .collect()
    }

    pub fn quota_set(&self, project: &str, q: &Quota) -> Result<(), StoreError> {
        let body = serde_json::to_string(q).map_err(|e| StoreError::Encode("quotas", e))?;
        let sql = self.dialect.upsert(
            "quotas",
            &["project_id", "body"],
            &["project_id"],
            &["body = {new}.body"],
        );
        self.exec(&sql, args![project, body])?;
        Ok(())
    }

    pub fn quota_delete(&self, project: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM quotas WHERE project_id = ?", args![project])?;
        Ok(())
    }

    /// Serializes the transactions that count a project's objects against its quota and then
    /// create some: the second waits for the first to commit, then counts what it created.
    pub fn quota_lock(&self, project: &str) -> Result<(), StoreError> {
        self.lock(&format!("quota:{project}"))
    }

    /// Serializes the rounds of a housekeeping duty run by several housekeeping processes: each
    /// round (count, then post jobs) sees what the one before it did.
    pub fn duty_lock(&self, duty: &str) -> Result<(), StoreError> {
        self.lock(&format!("duty:{duty}"))
    }

    /// Takes the row lock `name` until this transaction ends (on SQLite the single writer
    /// already serializes writes; the row is written all the same).
    pub(crate) fn lock(&self, name: &str) -> Result<(), StoreError> {
        let sql = self
            .dialect
            .upsert("locks", &["name", "n"], &["name"], &["n = {old}.n + 1"]);
        self.exec(&sql, args![name, 1i64])?;
        Ok(())
    }

    /// Counters of one listener summed over its amphorae.
    pub fn listener_stats(&self, listener_id: Id) -> Result<Stats, StoreError> {
        let d = self.dialect;
        let sql = format!(
            "SELECT {}, {}, {}, {}, {} FROM listener_stats WHERE listener_id = ?",
            d.sum_int("bytes_in"),
            d.sum_int("bytes_out"),
            d.sum_int("active_connections"),
            d.sum_int("total_connections"),
            d.sum_int("request_errors"),
        );
        match self.row(&sql, args![listener_id])? {
            Some(r) => stats(&r, 0),
            None => Ok(Stats::default()),
        }
    }

    /// Counters of one amphora, per listener.
    pub fn amphora_stats(&self, amphora_id: Id) -> Result<Vec<(Id, Stats)>, StoreError> {
        self.rows(
            "SELECT listener_id, bytes_in, bytes_out, active_connections, total_connections, \
             request_errors FROM listener_stats WHERE amphora_id = ? ORDER BY listener_id",
            args![amphora_id],
        )?
        .iter()
        .map(|r| Ok((r.id(0)?, stats(r, 1)?)))
        .collect()
    }

    /// Forgets the counters of deleted listeners.
    pub fn listener_stats_delete(&self, listener_ids: &[Id]) -> Result<(), StoreError> {
        for id in listener_ids {
            self.exec(
                "DELETE FROM listener_stats WHERE listener_id = ?",
                args![id],
            )?;
        }
        Ok(())
    }

    /// Adds heartbeat deltas to a listener's counters on one amphora (`active_connections` is
    /// absolute and replaced).
    pub fn listener_stats_add(
        &self,
        listener: Id,
        amphora: Id,
        d: &Stats,
    ) -> Result<(), StoreError> {
        self.listener_stats_add_many(&[(listener, amphora, *d)])
    }

    /// [`Tx::listener_stats_add`] for many `(listener, amphora)` pairs (each at most once), in
    /// one statement per [`ROWS_PER_STATEMENT`] rows.
    pub fn listener_stats_add_many(&self, rows: &[(Id, Id, Stats)]) -> Result<(), StoreError> {
        const COLS: [&str; 7] = [
            "listener_id",
            "amphora_id",
            "bytes_in",
            "bytes_out",
            "active_connections",
            "total_connections",
            "request_errors",
        ];
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = self.dialect.upsert_rows(
                "listener_stats",
                &COLS,
                &["listener_id", "amphora_id"],
                &[
                    "bytes_in = {old}.bytes_in + {new}.bytes_in",
                    "bytes_out = {old}.bytes_out + {new}.bytes_out",
                    "active_connections = {new}.active_connections",
                    "total_connections = {old}.total_connections + {new}.total_connections",
                    "request_errors = {old}.request_errors + {new}.request_errors",
                ],
                chunk.len(),
            );
            let mut a = Vec::with_capacity(chunk.len() * COLS.len());
            for (l, amp, d) in chunk {
                a.extend([
                    Value::from(l),
                    amp.into(),
                    d.bytes_in.into(),
                    d.bytes_out.into(),
                    d.active_connections.into(),
                    d.total_connections.into(),
                    d.request_errors.into(),
                ]);
            }
            self.exec(&sql, &a)?;
        }
        Ok(())
    }
}

impl Tx<'_> {
    /// Counts a heartbeat of an amphora if its sequence number is newer than the last one
    /// counted, by any health manager: `false` for a replay (or one overtaken by a newer
    /// heartbeat another health manager counted), which must then change nothing.
    pub fn health_seen(&self, amphora: Id, now_ms: i64, seq: i64) -> Result<bool, StoreError> {
        Ok(!self.health_seen_many(&[(amphora, seq)], now_ms)?.is_empty())
    }

    /// [`Tx::health_seen`] for a batch of heartbeats (one per amphora): the amphorae whose
    /// heartbeat counted. Per [`ROWS_PER_STATEMENT`] amphorae: their rows read under a row lock
    /// (health managers sharing the database take turns on an amphora; rows are locked in id
    /// order, so two batches never deadlock), then one upsert of those that advanced. An
    /// amphora's first heartbeat inserts its row first, so that it too is read locked.
    pub fn health_seen_many(
        &self,
        beats: &[(Id, i64)],
        now_ms: i64,
    ) -> Result<HashSet<Id>, StoreError> {
        let mut beats = beats.to_vec();
        beats.sort_unstable();
        let mut counted = HashSet::new();
        for chunk in beats.chunks(ROWS_PER_STATEMENT) {
            let mut stored = self.health_locked(chunk.iter().map(|b| b.0))?;
            let missing: Vec<Id> = chunk
                .iter()
                .map(|b| b.0)
                .filter(|a| !stored.contains_key(a))
                .collect();
            if !missing.is_empty() {
                let sql = self.dialect.insert_ignore_rows(
                    "amphora_health",
                    &["amphora_id", "last_update", "seq"],
                    &["amphora_id"],
                    missing.len(),
                );
                let a: Vec<Value> = missing
                    .iter()
                    .flat_map(|m| [m.into(), now_ms.into(), 0i64.into()])
                    .collect();
                self.exec(&sql, &a)?;
                stored.extend(self.health_locked(missing.into_iter())?);
            }
            let advanced: Vec<&(Id, i64)> = chunk
                .iter()
                .filter(|(a, seq)| stored.get(a).is_some_and(|s| s < seq))
                .collect();
            if advanced.is_empty() {
                continue;
            }
            let sql = self.dialect.upsert_rows(
                "amphora_health",
                &["amphora_id", "last_update", "seq"],
                &["amphora_id"],
                &["last_update = {new}.last_update", "seq = {new}.seq"],
                advanced.len(),
            );
            let a: Vec<Value> = advanced
                .iter()
                .flat_map(|(m, seq)| [m.into(), now_ms.into(), (*seq).into()])
                .collect();
            self.exec(&sql, &a)?;
            counted.extend(advanced.iter().map(|b| b.0));
        }
        Ok(counted)
    }

    /// The stored sequence numbers of `amphorae` (sorted), their rows locked until commit.
    fn health_locked(
        &self,
        amphorae: impl ExactSizeIterator<Item = Id>,
    ) -> Result<HashMap<Id, i64>, StoreError> {
        let n = amphorae.len();
        let a: Vec<Value> = amphorae.map(Value::from).collect();
        let sql = format!(
            "SELECT amphora_id, seq FROM amphora_health WHERE amphora_id IN ({}) \
             ORDER BY amphora_id{}",
            marks(n),
            self.dialect.lock_wait()
        );
        self.rows(&sql, &a)?
            .iter()
            .map(|r| Ok((r.id(0)?, r.int(1)?)))
            .collect()
    }

    /// When each amphora's last counted heartbeat came (milliseconds since the epoch).
    pub fn health_last_seen(&self) -> Result<Vec<(Id, i64)>, StoreError> {
        self.rows("SELECT amphora_id, last_update FROM amphora_health", &[])?
            .iter()
            .map(|r| Ok((r.id(0)?, r.int(1)?)))
            .collect()
    }

    /// The last sequence number counted per amphora.
    pub fn health_sequences(&self) -> Result<Vec<(Id, i64)>, StoreError> {
        self.rows("SELECT amphora_id, seq FROM amphora_health", &[])?
            .iter()
            .map(|r| Ok((r.id(0)?, r.int(1)?)))
            .collect()
    }

    /// Amphorae of load balancers whose last counted heartbeat is older than `cutoff_ms`, with
    /// their load balancer (only allocated amphorae: deleted ones and spares are not judged).
    pub fn stale_amphorae(&self, cutoff_ms: i64) -> Result<Vec<(Id, Id)>, StoreError> {
        let rows = self.rows(
            "SELECT h.amphora_id, a.lb_id FROM amphora_health h \
             JOIN amphorae a ON a.id = h.amphora_id \
             WHERE h.last_update < ? AND a.provisioning_status IN (?, ?) \
             ORDER BY h.last_update",
            args![
                cutoff_ms,
                AmphoraStatus::Allocated.as_str(),
                AmphoraStatus::FailoverStopped.as_str()
            ],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let a = Id::parse_str(&r.text(0).ok()?).ok()?;
                let l = Id::parse_str(&r.text(1).ok()?).ok()?;
                Some((a, l))
            })
            .collect())
    }

    /// The spare amphora a job claimed for one of its slots.
    pub fn claim_get(&self, job: Id, slot: &str) -> Result<Option<Id>, StoreError> {
        Ok(self
            .row(
                "SELECT amphora_id FROM amphora_claims WHERE job_id = ? AND slot = ?",
                args![job, slot],
            )?
            .and_then(|r| Id::parse_str(&r.text(0).ok()?).ok()))
    }

    pub fn claim_put(&self, job: Id, slot: &str, amphora: Id) -> Result<(), StoreError> {
        let sql = self.dialect.upsert(
            "amphora_claims",
            &["job_id", "slot", "amphora_id"],
            &["job_id", "slot"],
            &["amphora_id = {new}.amphora_id"],
        );
        self.exec(&sql, args![job, slot, amphora])?;
        Ok(())
    }

    /// Ids of amphorae in `status`, oldest first.
    /// How many amphorae are in each status and role (`""` for none: spares and standalone
    /// amphorae before their role is set), for the metrics.
    pub fn amphorae_by_status_role(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut n: HashMap<(String, String), i64> = HashMap::new();
        for a in self.list::<rocta_model::Amphora>(&crate::Filter::default())? {
            let role = a.role.map_or("", |r| r.as_str());
            *n.entry((a.status.as_str().to_string(), role.to_string()))
                .or_default() += 1;
        }
        let mut v: Vec<_> = n.into_iter().map(|((s, r), c)| (s, r, c)).collect();
        v.sort();
        Ok(v)
    }

    pub fn amphorae_in(&self, status: AmphoraStatus, limit: i64) -> Result<Vec<Id>, StoreError> {
        ids(self.rows(
            "SELECT id FROM amphorae WHERE provisioning_status = ? ORDER BY seq LIMIT ?",
            args![status.as_str(), limit],
        )?)
    }

    /// Records that a VIP is being allocated for `lb_id`, a load balancer not yet committed (in
    /// its own transaction, before the allocation). The transaction that records the load
    /// balancer ends the intent (`vip_intent_end`); an intent left behind by a process that
    /// died in between is found by `vip_intents_before` and its VIP released.
    pub fn vip_intent(&self, lb_id: Id, now_ms: i64) -> Result<(), StoreError> {
        let sql = self.dialect.upsert(
            "vip_allocations",
            &["lb_id", "created_ms"],
            &["lb_id"],
            &["created_ms = {new}.created_ms"],
        );
        self.exec(&sql, args![lb_id, now_ms])?;
        Ok(())
    }

    /// Ends the intent of `lb_id`; `false` if it was no longer there (housekeeping took it for
    /// an abandoned one: the VIP is being released, so the load balancer must not use it).
    pub fn vip_intent_end(&self, lb_id: Id) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM vip_allocations WHERE lb_id = ?", args![lb_id])? == 1)
    }

    /// Load balancers whose VIP intent was recorded before `cutoff_ms` and never ended.
    pub fn vip_intents_before(&self, cutoff_ms: i64) -> Result<Vec<Id>, StoreError> {
        ids(self.rows(
            "SELECT lb_id FROM vip_allocations WHERE created_ms < ? ORDER BY created_ms",
            args![cutoff_ms],
        )?)
    }

    /// Removes `DELETED` amphorae and load balancers last updated before the cutoffs, with the
    /// health records and claims that refer to them. Returns (amphorae, load balancers) purged.
    pub fn purge_deleted(
        &self,
        amphora_cutoff: Timestamp,
        lb_cutoff: Timestamp,
    ) -> Result<(usize, usize), StoreError> {
        let amps = self.exec(
            "DELETE FROM amphorae WHERE provisioning_status = 'DELETED' \
             AND COALESCE(updated_at, created_at) < ?",
            args![fmt_ts(&amphora_cutoff)],
        )?;
        self.exec(
            "DELETE FROM amphora_health WHERE amphora_id NOT IN (SELECT id FROM amphorae)",
            &[],
        )?;
        self.exec(
            "DELETE FROM amphora_claims WHERE amphora_id NOT IN (SELECT id FROM amphorae)",
            &[],
        )?;
        let lbs = self.exec(
            "DELETE FROM load_balancers WHERE provisioning_status = 'DELETED' \
             AND COALESCE(updated_at, created_at) < ?",
            args![fmt_ts(&lb_cutoff)],
        )?;
        Ok((amps as usize, lbs as usize))
    }
}
