//! Test-only crash points. With the `fault-injection` feature, `ROCTA_CRASH_AT=flow:step:when`
//! (`when` = before | executed | recorded | revert; `*` matches any flow or step) aborts the
//! process at that point, as a `kill -9` would. Without the feature this compiles to nothing.

#[cfg(feature = "fault-injection")]
pub(crate) fn crash_point(flow: &str, step: &str, when: &str) {
    let Ok(spec) = std::env::var("ROCTA_CRASH_AT") else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let (f, s, w) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let hit = (f == "*" || f == flow) && (s == "*" || s == step) && w == when;
    if hit {
        eprintln!("fault injection: crashing at {flow}:{step}:{when}");
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn crash_point(_flow: &str, _step: &str, _when: &str) {}

/// With `ROCTA_FAULT_DELAY_MS=N`, every step waits N ms first, so tests can observe and race
/// the `PENDING_*` window deterministically.
#[cfg(feature = "fault-injection")]
pub(crate) async fn delay_point() {
    if let Some(ms) = std::env::var("ROCTA_FAULT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) async fn delay_point() {}

/// With `ROCTA_FAIL_AT=flow:step`, that step fails (fatally) instead of running, so tests can
/// drive reverts. `ROCTA_FAIL_AT=@FILE` reads `flow:step` from FILE at each step (empty: no
/// failure), so one process can fail a different step for each load balancer.
#[cfg(feature = "fault-injection")]
pub(crate) fn fail_point(flow: &str, step: &str) -> bool {
    let Ok(mut spec) = std::env::var("ROCTA_FAIL_AT") else {
        return false;
    };
    if let Some(file) = spec.strip_prefix('@') {
        spec = std::fs::read_to_string(file)
            .unwrap_or_default()
            .trim()
            .to_string();
    }
    if spec.is_empty() {
        return false;
    }
    let (f, s) = spec.split_once(':').unwrap_or((&spec, ""));
    (f == "*" || f == flow) && (s == "*" || s == step)
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn fail_point(_flow: &str, _step: &str) -> bool {
    false
}
