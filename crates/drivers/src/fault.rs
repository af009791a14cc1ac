//! Test-only crash points. With the `fault-injection` feature, `ROCTA_CRASH_AT=driver:<point>`
//! aborts the process at that point of a driver, as a `kill -9` would: the windows between a
//! driver's side effect and the record of it (`allocate_vip`: a VIP allocated, its load balancer
//! not committed; `spawn_agent`: an agent started, its pid not written). Without the feature
//! this compiles to nothing.

#[cfg(feature = "fault-injection")]
pub(crate) fn crash_point(point: &str) {
    if std::env::var("ROCTA_CRASH_AT").is_ok_and(|s| s.strip_prefix("driver:") == Some(point)) {
        eprintln!("fault injection: crashing at driver:{point}");
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn crash_point(_point: &str) {}
