//! The durable job queue and its step journal.
//!
//! A job is claimed with a lease (`owner`, `lease_until`); the owner renews it while it works.
//! A job whose lease lapsed (its worker died) is claimed again by any worker, which resumes it
//! from the journal. Every journal write checks ownership in the same transaction, so a worker
//! that lost its lease cannot record anything after another worker took over.

use rocta_model::time;
use rocta_model::time::Timestamp;
use rocta_model::{new_id, Id, Job};
use serde_json::Value;

use crate::sql::{args, Row};
use crate::{Dialect, StoreError, Tx};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Reverting,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
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

/// Jobs of one kind in one state (`Tx::jobs_queue`).
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub kind: String,
    pub state: JobState,
    pub count: i64,
    /// Seconds since the oldest of them was posted.
    pub oldest_age_secs: Option<f64>,
}

/// A job for the operator's eyes: unfinished (`Tx::jobs_open`) or ended (`Tx::job_history`).
#[derive(Debug, Clone)]
pub struct JobView {
    pub id: Id,
    /// Its kind (`create_loadbalancer`, `child`, ...).
    pub name: String,
    /// Its load balancer (nil for spares).
    pub lb_id: Id,
    /// What the job was asked (the posted message).
    pub job: Value,
    /// `pending`, `running` or `reverting`; once ended `done` or `reverted`.
    pub state: String,
    /// Its steps, `{"step", "name", "state"}` each: an unfinished job's journaled steps
    /// (`done` or `reverted`); an ended job's flow (`Tx::job_finish`).
    pub steps: Vec<Value>,
    /// The step that failed, for a reverting or reverted job.
    pub failed_step: Option<i64>,
    pub error: Option<String>,
    /// How many times a worker claimed it.
    pub attempts: i64,
    pub created_at: Option<Timestamp>,
    /// When it last changed (unfinished) or ended.
    pub updated_at: Option<Timestamp>,
}

impl JobView {
    /// From `id, name, lb_id, payload, state, steps, failed_step, attempts, created_at,
    /// updated_at, error`.
    fn from_row(r: &Row) -> Result<JobView, StoreError> {
        let json = |t: Option<String>| {
            t.and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .unwrap_or(Value::Null)
        };
        let steps = match json(r.opt_text(5)?) {
            Value::Array(a) => a,
            _ => Vec::new(),
        };
        Ok(JobView {
            id: r.id(0)?,
            name: r.text(1)?,
            lb_id: r.id(2)?,
            job: json(r.opt_text(3)?),
            state: r.text(4)?,
            steps,
            failed_step: r.opt_int(6)?,
            attempts: r.int(7)?,
            created_at: crate::entity::parse_ts(r.opt_text(8)?.as_deref()),
            updated_at: crate::entity::parse_ts(r.opt_text(9)?.as_deref()),
            error: r.opt_text(10)?,
        })
    }
}

/// One journaled step.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub step: usize,
    pub name: String,
    pub output: Value,
    pub reverted: bool,
}

thread_local! {
    /// The kinds of the jobs this thread posted in the transaction it is running: told to the
    /// store's observer once the transaction has committed (`Store::timed`).
    static POSTED: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The kinds posted on this thread since the last call (emptied).
pub(crate) fn take_posted() -> Vec<&'static str> {
    POSTED.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

fn now_text() -> String {
    crate::entity::fmt_ts(&time::now())
}

impl Tx<'_> {
    /// Queues `job` (in the caller's transaction, beside the state change it belongs to) and
    /// returns its id.
    pub fn job_post(&self, job: &Job) -> Result<Id, StoreError> {
        let id = new_id();
        let payload = serde_json::to_string(job).map_err(|e| StoreError::Encode("jobs", e))?;
        let now = now_text();
        self.exec(
            "INSERT INTO jobs (id, name, lb_id, payload, state, locks_lb, created_at, \
             updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
            args![
                id,
                job.name(),
                job.lb_id(),
                payload,
                job.locks_lb(),
                now.clone(),
                now
            ],
        )?;
        POSTED.with(|p| p.borrow_mut().push(job.name()));
        if self.dialect == crate::Dialect::Postgres {
            // Delivered to the workers' LISTEN when (and only if) this transaction commits.
            self.exec(
                &format!("SELECT pg_notify('{}', '')", crate::pg::JOBS_CHANNEL),
                &[],
            )?;
        }
        Ok(id)
    }

    /// Claims the oldest job that is unowned or whose lease ended before `now_ms`, and that no
    /// earlier unfinished job of the same load balancer precedes: the jobs of one load balancer
    /// run one at a time, in order, so a resumed job never races a newer one (a job whose
    /// worker died blocks the later ones until its lease lapses and it is resumed).
    ///
    /// Several workers claim at once safely on every backend: the candidate row is locked
    /// (`FOR UPDATE SKIP LOCKED` on PostgreSQL and MySQL, the single writer on SQLite), and the
    /// claim itself is a conditional `UPDATE` that only one transaction can win.
    pub fn job_claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<JobRow>, StoreError> {
        const CLAIMABLE: &str = "FROM jobs j WHERE j.state IN ('pending', 'running', 'reverting') \
             AND (j.owner IS NULL OR j.lease_until < ?) \
             AND (j.lb_id = ? OR NOT EXISTS (SELECT 1 FROM jobs e \
                 WHERE e.lb_id = j.lb_id AND e.seq < j.seq \
                 AND e.state IN ('pending', 'running', 'reverting'))) \
             ORDER BY j.seq LIMIT 1";
        const COLS: &str = "id, name, payload, state, attempts, failed_step, error";
        let row = |r: &Row, state: JobState, attempts: i64| -> Result<JobRow, StoreError> {
            Ok(JobRow {
                id: r.id(0)?,
                name: r.text(1)?,
                payload: r.text(2)?,
                state,
                attempts,
                failed_step: r.opt_int(5)?.map(|s| s as usize),
                error: r.opt_text(6)?,
            })
        };
        if self.dialect == Dialect::Postgres {
            // One statement: the row is locked by the subquery and claimed by the update (a
            // row another claimer changed meanwhile is re-checked, and skipped if taken).
            let sql = format!(
                "UPDATE jobs SET owner = ?, lease_until = ?, attempts = attempts + 1, \
                 state = CASE state WHEN 'pending' THEN 'running' ELSE state END, updated_at = ? \
                 WHERE id = (SELECT j.id {CLAIMABLE} FOR UPDATE SKIP LOCKED) RETURNING {COLS}"
            );
            let a = args![owner, now_ms + lease_ms, now_text(), now_ms, Id::nil()];
            return match self.row(&sql, a)? {
                None => Ok(None),
                Some(r) => {
                    let state = JobState::parse(&r.text(3)?);
                    let attempts = r.int(4)?;
                    Ok(Some(row(&r, state, attempts)?))
                }
            };
        }
        let cols: String = COLS.split(", ").map(|c| format!("j.{c}, ")).collect();
        let sql = format!(
            "SELECT {} {CLAIMABLE}{}",
            cols.trim_end_matches(", "),
            self.dialect.lock_rows()
        );
        let Some(r) = self.row(&sql, args![now_ms, Id::nil()])? else {
            return Ok(None);
        };
        let (id, state, attempts) = (r.text(0)?, r.text(3)?, r.int(4)?);
        let won = self.exec(
            "UPDATE jobs SET owner = ?, lease_until = ?, attempts = attempts + 1, \
             state = CASE state WHEN 'pending' THEN 'running' ELSE state END, updated_at = ? \
             WHERE id = ? AND state = ? AND attempts = ? AND (owner IS NULL OR lease_until < ?)",
            args![
                owner,
                now_ms + lease_ms,
                now_text(),
                &id,
                &state,
                attempts,
                now_ms
            ],
        )?;
        if won != 1 {
            return Ok(None);
        }
        let state = match JobState::parse(&state) {
            JobState::Pending => JobState::Running,
            s => s,
        };
        Ok(Some(row(&r, state, attempts + 1)?))
    }

    /// Extends the lease; `false` if the job is no longer ours.
    pub fn job_renew(&self, id: Id, owner: &str, until_ms: i64) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ?",
            args![until_ms, id, owner],
        )? == 1)
    }

    fn check_owner(&self, id: Id, owner: &str) -> Result<(), StoreError> {
        let n = self.exec(
            "UPDATE jobs SET updated_at = ? WHERE id = ? AND owner = ?",
            args![now_text(), id, owner],
        )?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost(id.to_string()))
        }
    }

    /// The journal of a job.
    pub fn job_steps(&self, id: Id) -> Result<Vec<StepRow>, StoreError> {
        self.rows(
            "SELECT step, name, output, reverted FROM job_steps WHERE job_id = ? ORDER BY step",
            args![id],
        )?
        .iter()
        .map(|r| {
            Ok(StepRow {
                step: r.int(0)? as usize,
                name: r.text(1)?,
                output: serde_json::from_str(&r.text(2)?).unwrap_or(Value::Null),
                reverted: r.int(3)? != 0,
            })
        })
        .collect()
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
        let sql = self.dialect.upsert(
            "job_steps",
            &["job_id", "step", "name", "output", "reverted"],
            &["job_id", "step"],
            &[
                "name = {new}.name",
                "output = {new}.output",
                "reverted = {new}.reverted",
            ],
        );
        self.exec(&sql, args![id, step, name, output.to_string(), 0i64])?;
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
        self.exec(
            "UPDATE jobs SET state = 'reverting', failed_step = ?, error = ? WHERE id = ?",
            args![step, error, id],
        )?;
        Ok(())
    }

    /// Records a reverted step.
    pub fn job_step_reverted(&self, id: Id, owner: &str, step: usize) -> Result<(), StoreError> {
        self.check_owner(id, owner)?;
        let sql = self.dialect.upsert(
            "job_steps",
            &["job_id", "step", "name", "output", "reverted"],
            &["job_id", "step"],
            &["reverted = {new}.reverted"],
        );
        self.exec(&sql, args![id, step, "", "null", 1i64])?;
        Ok(())
    }

    /// Ends a job: a completed job is removed with its journal; a reverted one is kept as
    /// `failed` (with its error) for the operator, without its journal. Either way it goes
    /// into the history (`Tx::job_history`) with its steps: `flow` names the flow's tasks in
    /// order (empty when unknown: then the journal's steps); each is `done` (a completed job),
    /// or, for a reverted one, `reverted` before the step that failed, `failed`, then
    /// `not_run`.
    pub fn job_finish(
        &self,
        id: Id,
        owner: &str,
        error: Option<&str>,
        flow: &[&str],
    ) -> Result<(), StoreError> {
        let failed = match error {
            None => None,
            Some(_) => self
                .row("SELECT failed_step FROM jobs WHERE id = ?", args![id])?
                .map_or(Ok(None), |r| r.opt_int(0))?,
        };
        let steps: Vec<Value> = if flow.is_empty() {
            self.job_steps(id)?
                .into_iter()
                .filter(|s| !s.name.is_empty())
                .map(|s| {
                    let state = if s.reverted { "reverted" } else { "done" };
                    serde_json::json!({"step": s.step, "name": s.name, "state": state})
                })
                .collect()
        } else {
            flow.iter()
                .enumerate()
                .map(|(i, name)| {
                    let state = match (error, failed) {
                        (None, _) => "done",
                        (Some(_), Some(f)) if (i as i64) < f => "reverted",
                        (Some(_), Some(f)) if i as i64 == f => "failed",
                        (Some(_), Some(_)) => "not_run",
                        // Reverted before any step failed (a worker that kept dying).
                        (Some(_), None) => "reverted",
                    };
                    serde_json::json!({"step": i, "name": name, "state": state})
                })
                .collect()
        };
        let steps = Value::Array(steps).to_string();
        let outcome = if error.is_some() { "reverted" } else { "done" };
        self.exec(
            "INSERT INTO job_history (id, name, lb_id, payload, outcome, error, failed_step, \
             steps, attempts, created_at, finished_at) SELECT id, name, lb_id, payload, ?, ?, \
             failed_step, ?, attempts, created_at, ? FROM jobs WHERE id = ? AND owner = ?",
            args![outcome, error, steps, now_text(), id, owner],
        )?;
        // The job's row goes (or changes) only while this owner holds it.
        let n = match error {
            None => self.exec(
                "DELETE FROM jobs WHERE id = ? AND owner = ?",
                args![id, owner],
            )?,
            Some(e) => self.exec(
                "UPDATE jobs SET state = ?, owner = NULL, error = ? WHERE id = ? AND owner = ?",
                args![JobState::Failed.as_str(), e, id, owner],
            )?,
        };
        if n != 1 {
            return Err(StoreError::LeaseLost(id.to_string()));
        }
        self.exec("DELETE FROM job_steps WHERE job_id = ?", args![id])?;
        Ok(())
    }

    /// Whether `job` still holds the lock of `lb_id`: no later unfinished job that locks the
    /// load balancer exists. Such a job can only have been posted after this one unlocked the
    /// load balancer (a worker killed after its last status step, before journaling it), so a
    /// resumed job must not change the load balancer's statuses again.
    pub fn job_holds_lb(&self, job: Id, lb_id: Id) -> Result<bool, StoreError> {
        let later = self
            .row(
                "SELECT COUNT(*) FROM jobs e WHERE e.lb_id = ? AND e.locks_lb = 1 \
                 AND e.state IN ('pending', 'running', 'reverting') \
                 AND e.seq > (SELECT j.seq FROM jobs j WHERE j.id = ?)",
                args![lb_id, job],
            )?
            .map_or(Ok(0), |r| r.int(0))?;
        Ok(later == 0)
    }

    /// Jobs not yet finished (pending, running or reverting).
    pub fn jobs_unfinished(&self) -> Result<i64, StoreError> {
        self.row(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running', 'reverting')",
            &[],
        )?
        .map_or(Ok(0), |r| r.int(0))
    }

    /// The failing step and error of a reverting job.
    pub fn job_failure(&self, id: Id) -> Result<Option<(usize, String)>, StoreError> {
        let Some(r) = self.row(
            "SELECT failed_step, error, state FROM jobs WHERE id = ?",
            args![id],
        )?
        else {
            return Ok(None);
        };
        Ok(match (r.opt_int(0)?, r.text(2)?.as_str()) {
            (Some(step), "reverting") => Some((step as usize, r.opt_text(1)?.unwrap_or_default())),
            _ => None,
        })
    }

    /// Gives up the leases of `owner` (a worker shutting down cleanly), so another worker or the
    /// next start resumes its jobs at once instead of after the lease.
    pub fn jobs_release(&self, owner: &str) -> Result<usize, StoreError> {
        Ok(self.exec(
            "UPDATE jobs SET owner = NULL, lease_until = 0 WHERE owner = ?",
            args![owner],
        )? as usize)
    }

    /// Unfinished jobs of one kind (by name).
    /// The jobs named `name` not yet done (pending, running or reverting), oldest first.
    pub fn open_jobs_named(&self, name: &str) -> Result<Vec<Job>, StoreError> {
        self.rows(
            "SELECT payload FROM jobs WHERE name = ? AND state IN ('pending', 'running', \
             'reverting') ORDER BY created_at",
            args![name],
        )?
        .iter()
        .map(|r| {
            let text = r.text(0)?;
            serde_json::from_str(&text).map_err(|e| StoreError::Decode(format!("jobs: {e}")))
        })
        .collect()
    }

    /// The queue by kind and state: how many jobs, and when the oldest was posted.
    pub fn jobs_queue(&self) -> Result<Vec<QueueRow>, StoreError> {
        let now = time::now();
        self.rows(
            "SELECT name, state, COUNT(*), MIN(created_at) FROM jobs GROUP BY name, state",
            &[],
        )?
        .iter()
        .map(|r| {
            let oldest = crate::entity::parse_ts(r.opt_text(3)?.as_deref());
            Ok(QueueRow {
                kind: r.text(0)?,
                state: JobState::parse(&r.text(1)?),
                count: r.int(2)?,
                oldest_age_secs: oldest
                    .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
            })
        })
        .collect()
    }

    /// The unfinished jobs (pending, running or reverting), oldest first, at most `limit`,
    /// each with the steps its journal holds so far.
    pub fn jobs_open(&self, limit: i64) -> Result<Vec<JobView>, StoreError> {
        let rows = self.rows(
            &format!(
                "SELECT id, name, lb_id, payload, state, NULL, failed_step, attempts, \
                 created_at, updated_at, error FROM jobs \
                 WHERE state IN ('pending', 'running', 'reverting') ORDER BY seq LIMIT {}",
                limit.max(0)
            ),
            &[],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut j = JobView::from_row(r)?;
            j.steps = self
                .job_steps(j.id)?
                .into_iter()
                .map(|s| {
                    let state = if s.reverted { "reverted" } else { "done" };
                    serde_json::json!({"step": s.step, "name": s.name, "state": state})
                })
                .collect();
            out.push(j);
        }
        Ok(out)
    }

    /// Ended jobs, newest first, at most `limit`; only those of the kinds `names` unless it
    /// is empty.
    pub fn job_history(&self, names: &[&str], limit: i64) -> Result<Vec<JobView>, StoreError> {
        let filter = if names.is_empty() {
            String::new()
        } else {
            format!("WHERE name IN ({}) ", crate::entity::marks(names.len()))
        };
        let a: Vec<crate::sql::Value> = names.iter().map(|n| (*n).into()).collect();
        self.rows(
            &format!(
                "SELECT id, name, lb_id, payload, outcome, steps, failed_step, attempts, \
                 created_at, finished_at, error FROM job_history {filter}\
                 ORDER BY seq DESC LIMIT {}",
                limit.max(0)
            ),
            &a,
        )?
        .iter()
        .map(JobView::from_row)
        .collect()
    }

    /// Removes the history of jobs that ended before `before`; how many went.
    pub fn job_history_purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.exec(
            "DELETE FROM job_history WHERE finished_at < ?",
            args![crate::entity::fmt_ts(&before)],
        )
    }

    pub fn jobs_named(&self, name: &str) -> Result<i64, StoreError> {
        self.row(
            "SELECT COUNT(*) FROM jobs WHERE name = ? AND state IN ('pending', 'running', 'reverting')",
            args![name],
        )?
        .map_or(Ok(0), |r| r.int(0))
    }
}
