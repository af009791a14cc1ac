//! Any text as HAProxy's `show stat` CSV (what the agent reads from a stats socket): parsed or
//! skipped line by line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = rocta_haproxy::stats::parse_show_stat(&text);
});
