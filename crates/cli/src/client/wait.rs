//! `--wait`: follows an object's `provisioning_status` until the change is done, with a spinner
//! on a terminal and one line per status otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use reqwest::Method;

use super::http::{Api, Failure, Result};

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Until {
    Active,
    Gone,
}

/// Progress while waiting: a spinner on a terminal, else one line per status change.
enum Progress {
    Spinner(indicatif::ProgressBar),
    Lines(Option<String>),
}

impl Progress {
    fn new() -> Progress {
        if std::io::stderr().is_terminal() {
            let p = indicatif::ProgressBar::new_spinner();
            p.enable_steady_tick(Duration::from_millis(100));
            Progress::Spinner(p)
        } else {
            Progress::Lines(None)
        }
    }

    fn status(&mut self, label: &str, status: &str, since: Instant) {
        let line = format!("{label}: {status}");
        match self {
            Progress::Spinner(p) => {
                p.set_message(format!("{line} ({:.0} s)", since.elapsed().as_secs_f64()))
            }
            Progress::Lines(last) => {
                if last.as_deref() != Some(status) {
                    eprintln!("{line}");
                    *last = Some(status.to_string());
                }
            }
        }
    }

    fn finish(self, line: String) {
        match self {
            Progress::Spinner(p) => p.finish_with_message(line),
            Progress::Lines(_) => eprintln!("{line}"),
        }
    }
}

/// Follows `provisioning_status` of the object at `path` until ACTIVE (or gone); ERROR fails.
pub(super) fn wait(
    api: &Api,
    label: &str,
    path: &str,
    key: &str,
    until: Until,
    limit: Duration,
) -> Result<()> {
    let start = Instant::now();
    let mut progress = Progress::new();
    loop {
        let a = api.send(Method::GET, path, &[], None)?;
        let status = match a.status {
            404 => None,
            s if s >= 400 => {
                progress.finish(format!("{label}: could not be read"));
                return Err(Failure(super::http::fault(a.status, &a.body)));
            }
            _ => a.body[key]["provisioning_status"]
                .as_str()
                .map(str::to_string),
        };
        let took = format!("{:.1} s", start.elapsed().as_secs_f64());
        match (until, status.as_deref()) {
            (Until::Gone, None | Some("DELETED")) => {
                progress.finish(format!("{label}: deleted ({took})"));
                return Ok(());
            }
            (Until::Active, Some("ACTIVE")) => {
                progress.finish(format!("{label}: ACTIVE ({took})"));
                return Ok(());
            }
            (_, Some("ERROR")) => {
                progress.finish(format!("{label}: ERROR ({took})"));
                return Err(Failure(format!(
                    "{label} went to provisioning_status ERROR; see the controller's log"
                )));
            }
            (Until::Active, None) => {
                progress.finish(format!("{label}: gone"));
                return Err(Failure(format!("{label} no longer exists")));
            }
            (_, Some(s)) => progress.status(label, s, start),
        }
        if start.elapsed() > limit {
            progress.finish(format!("{label}: still {}", status.unwrap_or_default()));
            return Err(Failure(format!(
                "gave up waiting for {label} after {} s (--wait-timeout)",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
