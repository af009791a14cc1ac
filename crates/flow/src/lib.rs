//! A domain-free flow engine in the spirit of taskflow, made crash-safe by a journal.
//!
//! A [`Flow`] is an ordered list of [`Task`]s. The [`run`] function executes them in order and
//! records each finished step with its output in a [`Journal`] *before* the next step starts. When
//! a task fails (after its retry policy), the failing task and every completed task are reverted in
//! reverse order, each revert journaled too. Running the same flow again with the same journal
//! (after the process was killed at any instant) resumes where the journal ends: completed steps
//! are skipped (their outputs replayed), an interrupted revert continues. Tasks must therefore be
//! idempotent: a step may execute again if the process died between its effect and its record.
//!
//! Layout: `Task` and `TaskError` (what a step is), `Journal` (where progress is kept), `run`
//! (the runner), `fault` (test-only crash points).

mod fault;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

/// Why a task failed, and whether trying again can help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    pub message: String,
    /// A transient failure (a peer not answering yet, a busy database): retry per policy.
    pub retryable: bool,
}

impl TaskError {
    /// A failure retrying will not fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            retryable: false,
        }
    }

    /// A failure that may go away.
    pub fn transient(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            retryable: true,
        }
    }
}

/// How often and how patiently a step retries transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial: Duration::from_millis(20),
            max: Duration::from_secs(2),
        }
    }
}

/// Outputs of the steps completed so far, by step name.
pub type Outputs = HashMap<&'static str, Value>;

/// One step of a flow.
#[async_trait::async_trait]
pub trait Task<C: Sync>: Send + Sync {
    /// Unique within its flow; names the step in the journal and in logs.
    fn name(&self) -> &'static str;

    /// Does the work; the returned value is journaled and visible to later steps.
    async fn execute(&self, ctx: &C, outputs: &Outputs) -> Result<Value, TaskError>;

    /// Undoes `execute`. `output` is `None` when the step did not complete (it failed, or the
    /// process died before journaling it), so a revert must cope with partial or no effects.
    async fn revert(
        &self,
        _ctx: &C,
        _output: Option<&Value>,
        _outputs: &Outputs,
    ) -> Result<(), TaskError> {
        Ok(())
    }

    fn retry(&self) -> RetryPolicy {
        RetryPolicy::default()
    }

    /// `false` for a step whose output no later step reads and whose `execute` may run again
    /// on resume at no harm (one that only acts on revert, or one that pushes a desired state
    /// as a whole): its completion is not journaled (one write less per run).
    fn journaled(&self) -> bool {
        true
    }
}

/// An ordered list of tasks.
pub struct Flow<C: Sync> {
    pub name: &'static str,
    pub tasks: Vec<Box<dyn Task<C>>>,
}

/// What the journal holds for a job.
#[derive(Debug, Clone, Default)]
pub struct JournalState {
    /// Completed steps: index → output.
    pub done: HashMap<usize, Value>,
    /// Steps already reverted.
    pub reverted: Vec<usize>,
    /// Set once the flow failed: the index of the failing step and the error.
    pub failed: Option<(usize, String)>,
}

/// Journal errors: the run stops (the job will be resumed by whoever owns it next).
#[derive(Debug, thiserror::Error)]
#[error("journal: {0}")]
pub struct JournalError(pub String);

/// Where a run records its progress, durably, before going on.
#[async_trait::async_trait]
pub trait Journal: Send + Sync {
    async fn load(&self) -> Result<JournalState, JournalError>;
    async fn step_done(&self, index: usize, name: &str, output: &Value)
        -> Result<(), JournalError>;
    async fn begin_revert(&self, failed_index: usize, error: &str) -> Result<(), JournalError>;
    async fn step_reverted(&self, index: usize) -> Result<(), JournalError>;
    /// The flow completed; `last` is the step that just completed it, not journaled yet (so
    /// a journal can record both in one write). Called once per completed run.
    async fn complete(&self, last: Option<(usize, &str, &Value)>) -> Result<(), JournalError> {
        match last {
            Some((index, name, output)) => self.step_done(index, name, output).await,
            None => Ok(()),
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every step completed, and the journal was told (`Journal::complete`).
    Completed,
    /// A step failed; completed steps were reverted.
    Reverted { step: String, error: String },
    /// The journal could not be written (e.g. the lease was lost): stop without deciding.
    Interrupted(JournalError),
}

/// Runs (or resumes) `flow` against `journal`.
pub async fn run<C: Sync>(flow: &Flow<C>, ctx: &C, journal: &dyn Journal) -> Outcome {
    let state = match journal.load().await {
        Ok(s) => s,
        Err(e) => return Outcome::Interrupted(e),
    };
    let mut outputs = Outputs::new();
    for (i, t) in flow.tasks.iter().enumerate() {
        if let Some(v) = state.done.get(&i) {
            outputs.insert(t.name(), v.clone());
        }
    }
    if let Some((failed, error)) = state.failed.clone() {
        return revert_from(flow, ctx, journal, &state, &outputs, failed, error).await;
    }
    let mut last = None;
    for (i, task) in flow.tasks.iter().enumerate() {
        if state.done.contains_key(&i) {
            continue;
        }
        fault::delay_point().await;
        fault::crash_point(flow.name, task.name(), "before");
        let result = if fault::fail_point(flow.name, task.name()) {
            Err(TaskError::fatal("injected failure"))
        } else {
            execute_with_retry(task.as_ref(), ctx, &outputs).await
        };
        match result {
            Ok(out) => {
                fault::crash_point(flow.name, task.name(), "executed");
                if i + 1 == flow.tasks.len() && task.journaled() {
                    // Recorded with the flow's completion, below.
                    last = Some((i, out));
                    continue;
                }
                if task.journaled() {
                    if let Err(e) = journal.step_done(i, task.name(), &out).await {
                        return Outcome::Interrupted(e);
                    }
                    fault::crash_point(flow.name, task.name(), "recorded");
                }
                outputs.insert(task.name(), out);
            }
            Err(e) => {
                tracing::warn!(flow = flow.name, step = task.name(), error = %e, "step failed; reverting");
                if let Err(je) = journal.begin_revert(i, &e.message).await {
                    return Outcome::Interrupted(je);
                }
                return revert_from(flow, ctx, journal, &state, &outputs, i, e.message).await;
            }
        }
    }
    let last = last
        .as_ref()
        .map(|(i, out)| (*i, flow.tasks[*i].name(), out));
    if let Err(e) = journal.complete(last).await {
        return Outcome::Interrupted(e);
    }
    if let Some((_, name, _)) = last {
        fault::crash_point(flow.name, name, "recorded");
    }
    Outcome::Completed
}

async fn execute_with_retry<C: Sync>(
    task: &dyn Task<C>,
    ctx: &C,
    outputs: &Outputs,
) -> Result<Value, TaskError> {
    let policy = task.retry();
    let mut delay = policy.initial;
    let mut attempt = 1;
    loop {
        match task.execute(ctx, outputs).await {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable && attempt < policy.attempts => {
                tracing::debug!(step = task.name(), attempt, error = %e, "transient failure; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reverts step `failed` and every step before it, newest first, skipping reverted ones.
async fn revert_from<C: Sync>(
    flow: &Flow<C>,
    ctx: &C,
    journal: &dyn Journal,
    state: &JournalState,
    outputs: &Outputs,
    failed: usize,
    error: String,
) -> Outcome {
    let last = failed.min(flow.tasks.len().saturating_sub(1));
    for i in (0..=last).rev() {
        if state.reverted.contains(&i) {
            continue;
        }
        let task = &flow.tasks[i];
        let output = outputs.get(task.name());
        fault::crash_point(flow.name, task.name(), "revert");
        // A revert that keeps failing must not leave the job stuck: retry transient failures,
        // then log and go on so the flow's first step (mark ERROR) still runs.
        let mut delay = std::time::Duration::from_millis(50);
        for attempt in 1..=5 {
            match task.revert(ctx, output, outputs).await {
                Ok(()) => break,
                Err(e) if e.retryable && attempt < 5 => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    tracing::error!(flow = flow.name, step = task.name(), error = %e, "revert failed");
                    break;
                }
            }
        }
        if let Err(e) = journal.step_reverted(i).await {
            return Outcome::Interrupted(e);
        }
    }
    let step = flow
        .tasks
        .get(failed)
        .map(|t| t.name().to_string())
        .unwrap_or_default();
    Outcome::Reverted { step, error }
}

#[cfg(test)]
mod tests;
