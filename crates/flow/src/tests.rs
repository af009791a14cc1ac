use std::sync::Mutex;

use serde_json::json;

use super::*;

#[derive(Default)]
struct MemJournal(Mutex<JournalState>);

#[async_trait::async_trait]
impl Journal for MemJournal {
    async fn load(&self) -> Result<JournalState, JournalError> {
        Ok(self.0.lock().unwrap().clone())
    }
    async fn step_done(&self, i: usize, _: &str, out: &Value) -> Result<(), JournalError> {
        self.0.lock().unwrap().done.insert(i, out.clone());
        Ok(())
    }
    async fn begin_revert(&self, i: usize, e: &str) -> Result<(), JournalError> {
        self.0.lock().unwrap().failed = Some((i, e.to_string()));
        Ok(())
    }
    async fn step_reverted(&self, i: usize) -> Result<(), JournalError> {
        self.0.lock().unwrap().reverted.push(i);
        Ok(())
    }
}

/// Effects log shared by the test tasks.
#[derive(Default)]
struct Ctx {
    log: Mutex<Vec<String>>,
    fail_at: Option<&'static str>,
    transient_failures: Mutex<u32>,
}

struct Step(&'static str);

#[async_trait::async_trait]
impl Task<Ctx> for Step {
    fn name(&self) -> &'static str {
        self.0
    }
    async fn execute(&self, ctx: &Ctx, outputs: &Outputs) -> Result<Value, TaskError> {
        if ctx.fail_at == Some(self.0) {
            return Err(TaskError::fatal("boom"));
        }
        if self.0 == "flaky" {
            let mut n = ctx.transient_failures.lock().unwrap();
            if *n > 0 {
                *n -= 1;
                return Err(TaskError::transient("not yet"));
            }
        }
        ctx.log
            .lock()
            .unwrap()
            .push(format!("do {} (saw {})", self.0, outputs.len()));
        Ok(json!({ "step": self.0 }))
    }
    async fn revert(&self, ctx: &Ctx, out: Option<&Value>, _: &Outputs) -> Result<(), TaskError> {
        ctx.log
            .lock()
            .unwrap()
            .push(format!("undo {} {}", self.0, out.is_some()));
        Ok(())
    }
    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
        }
    }
}

fn flow() -> Flow<Ctx> {
    Flow {
        name: "t",
        tasks: vec![
            Box::new(Step("a")),
            Box::new(Step("flaky")),
            Box::new(Step("c")),
        ],
    }
}

#[tokio::test]
async fn completes_in_order_passing_outputs() {
    let ctx = Ctx::default();
    let j = MemJournal::default();
    assert!(matches!(run(&flow(), &ctx, &j).await, Outcome::Completed));
    assert_eq!(
        *ctx.log.lock().unwrap(),
        vec!["do a (saw 0)", "do flaky (saw 1)", "do c (saw 2)"]
    );
}

#[tokio::test]
async fn failure_reverts_failed_and_completed_steps_newest_first() {
    let ctx = Ctx {
        fail_at: Some("c"),
        ..Default::default()
    };
    let j = MemJournal::default();
    let out = run(&flow(), &ctx, &j).await;
    assert!(
        matches!(out, Outcome::Reverted { ref step, .. } if step == "c"),
        "{out:?}"
    );
    let log = ctx.log.lock().unwrap().clone();
    assert_eq!(log[2..], ["undo c false", "undo flaky true", "undo a true"]);
}

#[tokio::test]
async fn transient_failures_are_retried_then_fail() {
    let ctx = Ctx {
        transient_failures: Mutex::new(2),
        ..Default::default()
    };
    assert!(matches!(
        run(&flow(), &ctx, &MemJournal::default()).await,
        Outcome::Completed
    ));
    let ctx = Ctx {
        transient_failures: Mutex::new(5),
        ..Default::default()
    };
    assert!(matches!(
        run(&flow(), &ctx, &MemJournal::default()).await,
        Outcome::Reverted { .. }
    ));
}

#[tokio::test]
async fn resume_skips_journaled_steps_and_replays_outputs() {
    let ctx = Ctx::default();
    let j = MemJournal::default();
    j.0.lock().unwrap().done.insert(0, json!({"step": "a"}));
    assert!(matches!(run(&flow(), &ctx, &j).await, Outcome::Completed));
    assert_eq!(
        *ctx.log.lock().unwrap(),
        vec!["do flaky (saw 1)", "do c (saw 2)"]
    );
}

#[tokio::test]
async fn resume_continues_an_interrupted_revert() {
    let ctx = Ctx::default();
    let j = MemJournal::default();
    {
        let mut s = j.0.lock().unwrap();
        s.done.insert(0, json!(1));
        s.done.insert(1, json!(2));
        s.failed = Some((2, "boom".into()));
        s.reverted.push(2);
    }
    assert!(matches!(
        run(&flow(), &ctx, &j).await,
        Outcome::Reverted { .. }
    ));
    assert_eq!(
        *ctx.log.lock().unwrap(),
        vec!["undo flaky true", "undo a true"]
    );
}
