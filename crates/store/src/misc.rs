//! Quotas, listener statistics, amphora health and claims, VIP allocation intents, purge.

use rocta_model::{Id, Quota, Stats};
use rusqlite::{params, OptionalExtension};

use crate::{StoreError, Tx};

impl Tx<'_> {
    /// A project's quota overrides, if it has any.
    pub fn quota_get(&self, project: &str) -> Result<Option<Quota>, StoreError> {
        let body: Option<String> = self
            .conn
            .prepare_cached("SELECT body FROM quotas WHERE project_id = ?1")?
            .query_row(params![project], |r| r.get(0))
            .optional()?;
        body.map(|b| {
            serde_json::from_str(&b).map_err(|source| StoreError::Corrupt {
                table: "quotas",
                id: project.to_string(),
                source,
            })
        })
        .transpose()
    }

    /// Every project that has overrides.
    pub fn quota_list(&self) -> Result<Vec<(String, Quota)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT project_id, body FROM quotas ORDER BY project_id")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (p, b) = r?;
            let q = serde_json::from_str(&b).map_err(|source| StoreError::Corrupt {
                table: "quotas",
                id: p.clone(),
                source,
            })?;
            out.push((p, q));
        }
        Ok(out)
    }

    pub fn quota_set(&self, project: &str, q: &Quota) -> Result<(), StoreError> {
        let body = serde_json::to_string(q).map_err(|e| StoreError::Encode("quotas", e))?;
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO quotas (project_id, body) VALUES (?1, ?2)")?
            .execute(params![project, body])?;
        Ok(())
    }

    pub fn quota_delete(&self, project: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM quotas WHERE project_id = ?1")?
            .execute(params![project])?;
        Ok(())
    }

    /// Counters of one listener summed over its amphorae.
    pub fn listener_stats(&self, listener_id: Id) -> Result<Stats, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COALESCE(SUM(bytes_in),0), COALESCE(SUM(bytes_out),0), \
                 COALESCE(SUM(active_connections),0), COALESCE(SUM(total_connections),0), \
                 COALESCE(SUM(request_errors),0) FROM listener_stats WHERE listener_id = ?1",
            )?
            .query_row(params![listener_id.to_string()], |r| {
                Ok(Stats {
                    bytes_in: r.get(0)?,
                    bytes_out: r.get(1)?,
                    active_connections: r.get(2)?,
                    total_connections: r.get(3)?,
                    request_errors: r.get(4)?,
                })
            })?)
    }

    /// Counters of one amphora, per listener.
    pub fn amphora_stats(&self, amphora_id: Id) -> Result<Vec<(Id, Stats)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT listener_id, bytes_in, bytes_out, active_connections, total_connections, \
             request_errors FROM listener_stats WHERE amphora_id = ?1 ORDER BY listener_id",
        )?;
        let rows = st.query_map(params![amphora_id.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Stats {
                    bytes_in: r.get(1)?,
                    bytes_out: r.get(2)?,
                    active_connections: r.get(3)?,
                    total_connections: r.get(4)?,
                    request_errors: r.get(5)?,
                },
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (l, s) = r?;
            out.push((Id::parse_str(&l).unwrap_or(Id::nil()), s));
        }
        Ok(out)
    }

    /// Forgets the counters of deleted listeners.
    pub fn listener_stats_delete(&self, listener_ids: &[Id]) -> Result<(), StoreError> {
        let mut st = self
            .conn
            .prepare_cached("DELETE FROM listener_stats WHERE listener_id = ?1")?;
        for id in listener_ids {
            st.execute(params![id.to_string()])?;
        }
        Ok(())
    }
}

impl Tx<'_> {
    /// Records a counted heartbeat of an amphora.
    pub fn health_seen(&self, amphora: Id, now_ms: i64, seq: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO amphora_health (amphora_id, last_update, seq) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (amphora_id) DO UPDATE SET last_update = ?2, seq = ?3",
            )?
            .execute(params![amphora.to_string(), now_ms, seq])?;
        Ok(())
    }

    /// Amphorae of load balancers whose last counted heartbeat is older than `cutoff_ms`, with
    /// their load balancer (only allocated amphorae: deleted ones and spares are not judged).
    pub fn stale_amphorae(&self, cutoff_ms: i64) -> Result<Vec<(Id, Id)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT h.amphora_id, a.lb_id FROM amphora_health h JOIN amphorae a ON a.id = h.amphora_id \
             WHERE h.last_update < ?1 AND a.provisioning_status IN ('ALLOCATED', 'FAILOVER_STOPPED') \
             ORDER BY h.last_update",
        )?;
        let rows = st.query_map(params![cutoff_ms], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (a, l) = r?;
            if let (Ok(a), Ok(l)) = (Id::parse_str(&a), Id::parse_str(&l)) {
                out.push((a, l));
            }
        }
        Ok(out)
    }

    /// The spare amphora a job claimed for one of its slots.
    pub fn claim_get(&self, job: Id, slot: &str) -> Result<Option<Id>, StoreError> {
        let a: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT amphora_id FROM amphora_claims WHERE job_id = ?1 AND slot = ?2",
            )?
            .query_row(params![job.to_string(), slot], |r| r.get(0))
            .optional()?;
        Ok(a.and_then(|a| Id::parse_str(&a).ok()))
    }

    pub fn claim_put(&self, job: Id, slot: &str, amphora: Id) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO amphora_claims (job_id, slot, amphora_id) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![job.to_string(), slot, amphora.to_string()])?;
        Ok(())
    }

    /// Ids of amphorae in `status`, oldest first.
    pub fn amphorae_in(&self, status: &str, limit: i64) -> Result<Vec<Id>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id FROM amphorae WHERE provisioning_status = ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![status, limit], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            if let Ok(id) = Id::parse_str(&r?) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Records that a VIP is being allocated for `lb_id`, a load balancer not yet committed (in
    /// its own transaction, before the allocation). The transaction that records the load
    /// balancer ends the intent (`vip_intent_end`); an intent left behind by a process that
    /// died in between is found by `vip_intents_before` and its VIP released.
    pub fn vip_intent(&self, lb_id: Id, now_ms: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO vip_allocations (lb_id, created_ms) VALUES (?1, ?2)",
            )?
            .execute(params![lb_id.to_string(), now_ms])?;
        Ok(())
    }

    /// Ends the intent of `lb_id`; `false` if it was no longer there (housekeeping took it for
    /// an abandoned one: the VIP is being released, so the load balancer must not use it).
    pub fn vip_intent_end(&self, lb_id: Id) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM vip_allocations WHERE lb_id = ?1")?
            .execute(params![lb_id.to_string()])?
            == 1)
    }

    /// Load balancers whose VIP intent was recorded before `cutoff_ms` and never ended.
    pub fn vip_intents_before(&self, cutoff_ms: i64) -> Result<Vec<Id>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT lb_id FROM vip_allocations WHERE created_ms < ?1")?;
        let rows = st.query_map(params![cutoff_ms], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            if let Ok(id) = Id::parse_str(&r?) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Unfinished jobs of one kind (by name).
    pub fn jobs_named(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM jobs WHERE name = ?1 AND state IN ('pending', 'running', 'reverting')",
            )?
            .query_row(params![name], |r| r.get(0))?)
    }

    /// Removes `DELETED` amphorae and load balancers last updated before the cutoffs, with the
    /// health records and claims that refer to them. Returns (amphorae, load balancers) purged.
    pub fn purge_deleted(
        &self,
        amphora_cutoff: rocta_model::time::Timestamp,
        lb_cutoff: rocta_model::time::Timestamp,
    ) -> Result<(usize, usize), StoreError> {
        let c = &self.conn;
        let amps = c.execute(
            "DELETE FROM amphorae WHERE provisioning_status = 'DELETED' \
             AND COALESCE(updated_at, created_at) < ?1",
            params![crate::entity::fmt_ts(&amphora_cutoff)],
        )?;
        c.execute(
            "DELETE FROM amphora_health WHERE amphora_id NOT IN (SELECT id FROM amphorae)",
            [],
        )?;
        c.execute(
            "DELETE FROM amphora_claims WHERE amphora_id NOT IN (SELECT id FROM amphorae)",
            [],
        )?;
        let lbs = c.execute(
            "DELETE FROM load_balancers WHERE provisioning_status = 'DELETED' \
             AND COALESCE(updated_at, created_at) < ?1",
            params![crate::entity::fmt_ts(&lb_cutoff)],
        )?;
        Ok((amps, lbs))
    }

    /// The last sequence number counted per amphora.
    pub fn health_sequences(&self) -> Result<Vec<(Id, i64)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT amphora_id, seq FROM amphora_health")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (a, s) = r?;
            out.push((Id::parse_str(&a).unwrap_or(Id::nil()), s));
        }
        Ok(out)
    }

    /// Adds heartbeat deltas to a listener's counters on one amphora (`active_connections` is
    /// absolute and replaced).
    pub fn listener_stats_add(
        &self,
        listener: Id,
        amphora: Id,
        d: &Stats,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO listener_stats (listener_id, amphora_id, bytes_in, bytes_out, \
                 active_connections, total_connections, request_errors) VALUES (?1,?2,?3,?4,?5,?6,?7) \
                 ON CONFLICT (listener_id, amphora_id) DO UPDATE SET bytes_in = bytes_in + ?3, \
                 bytes_out = bytes_out + ?4, active_connections = ?5, \
                 total_connections = total_connections + ?6, request_errors = request_errors + ?7",
            )?
            .execute(params![
                listener.to_string(),
                amphora.to_string(),
                d.bytes_in,
                d.bytes_out,
                d.active_connections,
                d.total_connections,
                d.request_errors
            ])?;
        Ok(())
    }
}
