//! The durable job queue and its step journal.
//!
//! A job is claimed with a lease (`owner`, `lease_until`); the owner renews it while it works.
//! A job whose lease lapsed (its worker died) is claimed again by any worker, which resumes it
//! from the journal. Every journal write checks ownership in the same transaction, so a worker
//! that lost its lease cannot record anything after another worker took over.

use rocta_model::time;
use rocta_model::{new_id, Id, Job};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use crate::{StoreError, Tx};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Reverting,
    Failed,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Reverting => "reverting",
            JobState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "pending" => JobState::Pending,
            "running" => JobState::Running,
            "reverting" => JobState::Reverting,
            _ => JobState::Failed,
        }
    }
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: Id,
    pub name: String,
    pub payload: String,
    pub state: JobState,
    /// How many times the job was claimed (1 on the first claim).
    pub attempts: i64,
    pub failed_step: Option<usize>,
    pub error: Option<String>,
}

/// One journaled step.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub step: usize,
    pub name: String,
    pub output: Value,
    pub reverted: bool,
}

fn now_text() -> String {
    time::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

impl Tx<'_> {
    /// Queues `job` (in the caller's transaction, beside the state change it belongs to) and
    /// returns its id.
    pub fn job_post(&self, job: &Job) -> Result<Id, StoreError> {
        let id = new_id();
        let payload = serde_json::to_string(job).map_err(|e| StoreError::Encode("jobs", e))?;
        let now = now_text();
        self.conn
            .prepare_cached(
                "INSERT INTO jobs (id, name, lb_id, payload, state, locks_lb, created_at, \
                 updated_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?6)",
            )?
            .execute(params![
                id.to_string(),
                job.name(),
                job.lb_id().to_string(),
                payload,
                job.locks_lb(),
                now
            ])?;
        Ok(id)
    }

    /// Claims the oldest job that is unowned or whose lease ended before `now_ms`, and that no
    /// earlier unfinished job of the same load balancer precedes: the jobs of one load balancer
    /// run one at a time, in order, so a resumed job never races a newer one (a job whose
    /// worker died blocks the later ones until its lease lapses and it is resumed).
    pub fn job_claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<JobRow>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT j.id, j.name, j.payload, j.state, j.attempts, j.failed_step, j.error \
                 FROM jobs j WHERE j.state IN ('pending', 'running', 'reverting') \
                 AND (j.owner IS NULL OR j.lease_until < ?1) \
                 AND (j.lb_id = ?2 OR NOT EXISTS (SELECT 1 FROM jobs e \
                     WHERE e.lb_id = j.lb_id AND e.seq < j.seq \
                     AND e.state IN ('pending', 'running', 'reverting'))) \
                 ORDER BY j.seq LIMIT 1",
            )?
            .query_row(params![now_ms, Id::nil().to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })
            .optional()?;
        let Some((id, name, payload, state, attempts, failed_step, error)) = row else {
            return Ok(None);
        };
        self.conn
            .prepare_cached(
                "UPDATE jobs SET owner = ?2, lease_until = ?3, attempts = attempts + 1, \
                 state = CASE state WHEN 'pending' THEN 'running' ELSE state END, updated_at = ?4 \
                 WHERE id = ?1",
            )?
            .execute(params![id, owner, now_ms + lease_ms, now_text()])?;
        let state = match JobState::parse(&state) {
            JobState::Pending => JobState::Running,
            s => s,
        };
        Ok(Some(JobRow {
            id: Id::parse_str(&id).unwrap_or(Id::nil()),
            name,
            payload,
            state,
            attempts: attempts + 1,
            failed_step: failed_step.map(|s| s as usize),
            error,
        }))
    }

    /// Extends the lease; `false` if the job is no longer ours.
    pub fn job_renew(&self, id: Id, owner: &str, until_ms: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND owner = ?2")?
            .execute(params![id.to_string(), owner, until_ms])?
            == 1)
    }

    fn check_owner(&self, id: Id, owner: &str) -> Result<(), StoreError> {
        let n = self
            .conn
            .prepare_cached("UPDATE jobs SET updated_at = ?3 WHERE id = ?1 AND owner = ?2")?
            .execute(params![id.to_string(), owner, now_text()])?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost(id.to_string()))
        }
    }

    /// The journal of a job.
    pub fn job_steps(&self, id: Id) -> Result<Vec<StepRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT step, name, output, reverted FROM job_steps WHERE job_id = ?1 ORDER BY step",
        )?;
        let rows = st.query_map(params![id.to_string()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (step, name, output, reverted) = r?;
            out.push(StepRow {
                step: step as usize,
                name,
                output: serde_json::from_str(&output).unwrap_or(Value::Null),
                reverted,
            });
        }
        Ok(out)
    }

    /// Records a completed step.
    pub fn job_step_done(
        &self,
        id: Id,
        owner: &str,
        step: usize,
        name: &str,
        output: &Value,
    ) -> Result<(), StoreError> {
        self.check_owner(id, owner)?;
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO job_steps (job_id, step, name, output, reverted) \
                 VALUES (?1, ?2, ?3, ?4, 0)",
            )?
            .execute(params![
                id.to_string(),
                step as i64,
                name,
                output.to_string()
            ])?;
        Ok(())
    }

    /// Marks the job as reverting from `step`.
    pub fn job_begin_revert(
        &self,
        id: Id,
        owner: &str,
        step: usize,
        error: &str,
    ) -> Result<(), StoreError> {
        self.check_owner(id, owner)?;
        self.conn
            .prepare_cached(
                "UPDATE jobs SET state = 'reverting', failed_step = ?2, error = ?3 WHERE id = ?1",
            )?
            .execute(params![id.to_string(), step as i64, error])?;
        Ok(())
    }

    /// Records a reverted step.
    pub fn job_step_reverted(&self, id: Id, owner: &str, step: usize) -> Result<(), StoreError> {
        self.check_owner(id, owner)?;
        self.conn
            .prepare_cached(
                "INSERT INTO job_steps (job_id, step, name, output, reverted) \
                 VALUES (?1, ?2, '', 'null', 1) \
                 ON CONFLICT (job_id, step) DO UPDATE SET reverted = 1",
            )?
            .execute(params![id.to_string(), step as i64])?;
        Ok(())
    }

    /// Ends a job: a completed job is removed with its journal; a reverted one is kept as
    /// `failed` (with its error) for the operator, without its journal.
    pub fn job_finish(&self, id: Id, owner: &str, error: Option<&str>) -> Result<(), StoreError> {
        self.check_owner(id, owner)?;
        self.conn
            .prepare_cached("DELETE FROM job_steps WHERE job_id = ?1")?
            .execute(params![id.to_string()])?;
        match error {
            None => {
                self.conn
                    .prepare_cached("DELETE FROM jobs WHERE id = ?1")?
                    .execute(params![id.to_string()])?;
            }
            Some(e) => {
                self.conn
                    .prepare_cached(
                        "UPDATE jobs SET state = ?2, owner = NULL, error = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id.to_string(), JobState::Failed.as_str(), e])?;
            }
        }
        Ok(())
    }

    /// Whether `job` still holds the lock of `lb_id`: no later unfinished job that locks the
    /// load balancer exists. Such a job can only have been posted after this one unlocked the
    /// load balancer (a worker killed after its last status step, before journaling it), so a
    /// resumed job must not change the load balancer's statuses again.
    pub fn job_holds_lb(&self, job: Id, lb_id: Id) -> Result<bool, StoreError> {
        let later: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM jobs e WHERE e.lb_id = ?2 AND e.locks_lb = 1 \
                 AND e.state IN ('pending', 'running', 'reverting') \
                 AND e.seq > (SELECT seq FROM jobs WHERE id = ?1)",
            )?
            .query_row(params![job.to_string(), lb_id.to_string()], |r| r.get(0))?;
        Ok(later == 0)
    }

    /// Jobs not yet finished (pending, running or reverting).
    pub fn jobs_unfinished(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running', 'reverting')",
            [],
            |r| r.get(0),
        )?)
    }
}

impl Tx<'_> {
    /// The failing step and error of a reverting job.
    pub fn job_failure(&self, id: Id) -> Result<Option<(usize, String)>, StoreError> {
        let r: Option<(Option<i64>, Option<String>, String)> = self
            .conn
            .prepare_cached("SELECT failed_step, error, state FROM jobs WHERE id = ?1")?
            .query_row(params![id.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        Ok(match r {
            Some((Some(step), err, state)) if state == "reverting" => {
                Some((step as usize, err.unwrap_or_default()))
            }
            _ => None,
        })
    }

    /// Gives up the leases of `owner` (a worker shutting down cleanly), so another worker or the
    /// next start resumes its jobs at once instead of after the lease.
    pub fn jobs_release(&self, owner: &str) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .prepare_cached("UPDATE jobs SET owner = NULL, lease_until = 0 WHERE owner = ?1")?
            .execute(params![owner])?)
    }
}
