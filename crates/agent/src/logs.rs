//! Per-request logs: HAProxy writes them into an in-memory ring (no syscall per request, see the
//! renderer); the agent drains each load balancer's ring into `<lb>/traffic.log` (rotated to
//! `traffic.log.1` at [`ROTATE_AT`]) through the stats socket (`show events <ring> -w`).
//!
//! One watcher per load balancer keeps the current worker followed: it asks the stats socket
//! which worker answers (at once after a start or reload, then every [`WATCH`]) and opens a
//! session on that worker's ring when none is streaming from it, so a session that ends for
//! any reason is replaced within a second instead of leaving the log silent. Each worker has its
//! own ring, so after a reload the new worker's ring is read from its start. A waiting
//! `show events` session keeps an old worker alive, so the old worker's session is closed once
//! its ring has been quiet for [`RETIRE_QUIET`] (or after [`RETIRE_MAX`]).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::shipping::Shippers;

/// Size at which `traffic.log` is rotated (one older file is kept).
pub const ROTATE_AT: u64 = 16 << 20;
/// How often a watcher checks that the current worker's ring is being drained.
pub const WATCH: Duration = Duration::from_secs(1);
/// Pause between reads once a session has caught up (lines are at most this late in the file).
const BATCH: Duration = Duration::from_millis(50);
const RETIRE_QUIET: Duration = Duration::from_secs(2);
const RETIRE_MAX: Duration = Duration::from_secs(60);

/// The log watcher of each load balancer.
#[derive(Clone, Default)]
pub struct Drains {
    watched: Arc<Mutex<HashMap<String, Watch>>>,
    /// Where the lines are shipped too (`[log_shipping]`), if anywhere.
    shippers: Shippers,
}

impl std::fmt::Debug for Drains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drains")
            .field("shipping", &self.shippers.tenant.is_some())
            .finish()
    }
}

#[derive(Debug)]
struct Watch {
    wake: Arc<Notify>,
    stop: CancellationToken,
}

/// Where one load balancer's logs come from and go to.
struct Target {
    lb: String,
    socket: String,
    ring: String,
    log: PathBuf,
    shippers: Shippers,
}

/// The session streaming one worker's ring.
struct Session {
    pid: i32,
    retire: CancellationToken,
    task: JoinHandle<()>,
}

impl Drains {
    pub fn new(shippers: Shippers) -> Drains {
        Drains {
            watched: Default::default(),
            shippers,
        }
    }

    pub fn shippers(&self) -> &Shippers {
        &self.shippers
    }

    /// Keeps the current worker of `lb` followed. The first call starts the watcher; later
    /// calls (after a start or reload) make it look at once. Returns at once.
    pub fn follow(&self, lb: &str, socket: String, ring: String, log: PathBuf) {
        let mut map = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = map.get(lb) {
            w.wake.notify_one();
            return;
        }
        let w = Watch {
            wake: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
        };
        let (wake, stop) = (w.wake.clone(), w.stop.clone());
        map.insert(lb.to_string(), w);
        let target = Target {
            lb: lb.to_string(),
            socket,
            ring,
            log,
            shippers: self.shippers.clone(),
        };
        tokio::spawn(watch(target, wake, stop));
    }

    /// Stops watching `lb` (its HAProxy is stopping); the last session drains what is left.
    pub fn forget(&self, lb: &str) {
        if let Some(w) = self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(lb)
        {
            w.stop.cancel();
        }
    }
}

/// Keeps one load balancer's ring followed: a periodic duty (every `WATCH`, at once when
/// woken after a start or reload); its session is retired when the duty ends.
struct Watcher {
    target: Target,
    current: Option<Session>,
}

impl rocta_service::tasks::Duty for Watcher {
    type Error = std::io::Error;
    /// A stats socket that does not answer is the normal state of a load balancer not started
    /// yet or stopped: not a failure of the duty (which would back off and be slow to follow
    /// the next start), only a debug line.
    async fn work(&mut self) -> std::io::Result<()> {
        if let Err(e) = ensure(&self.target, &mut self.current).await {
            tracing::debug!(lb = %self.target.lb, error = %e, "following the log ring");
        }
        Ok(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(s) = self.current.take() {
            s.retire.cancel();
        }
    }
}

async fn watch(t: Target, wake: Arc<Notify>, stop: CancellationToken) {
    let name = "log_watcher";
    let watcher = Watcher {
        target: t,
        current: None,
    };
    rocta_service::tasks::periodic_or_woken(
        name,
        WATCH,
        Default::default(),
        stop,
        Some(wake),
        watcher,
    )
    .await;
}

/// Opens a session on the worker answering the stats socket unless one streams from it already.
async fn ensure(t: &Target, current: &mut Option<Session>) -> std::io::Result<()> {
    let pid = crate::haproxy::worker_pid(&t.socket).await?;
    let same = current.as_ref().filter(|s| s.pid == pid);
    if same.is_some_and(|s| !s.task.is_finished()) {
        return Ok(());
    }
    // A session that ended while its worker runs is replaced with one that skips what the ring
    // holds (already written); a new worker's ring is read from its start.
    let only_new = if same.is_some() {
        tracing::warn!(lb = %t.lb, pid, "the log ring session ended while its worker runs; following it again");
        " -n"
    } else {
        ""
    };
    let mut s = crate::haproxy::stats_connect(&t.socket).await?;
    s.write_all(format!("show info; show events {} -w{only_new}\n", t.ring).as_bytes())
        .await?;
    let (pid, rest) = read_pid(&mut s).await?;
    let retire = CancellationToken::new();
    let log = t.log.clone();
    let r = retire.clone();
    let shippers = t.shippers.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = stream(s, rest, &log, shippers, r).await {
            tracing::warn!(path = %log.display(), error = %e, "log ring drain ended");
        }
    });
    if let Some(old) = current.replace(Session { pid, retire, task }) {
        old.retire.cancel();
    }
    Ok(())
}

/// Reads `show info` up to its blank line; returns the worker's pid and the bytes after it.
async fn read_pid(s: &mut tokio::net::UnixStream) -> std::io::Result<(i32, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            let pid = head
                .lines()
                .find_map(|l| l.strip_prefix("Pid: "))
                .and_then(|p| p.trim().parse().ok())
                .ok_or_else(|| std::io::Error::other("no Pid in show info"))?;
            return Ok((pid, buf[end + 2..].to_vec()));
        }
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "show info"))??;
        if n == 0 || buf.len() > 1 << 20 {
            return Err(std::io::Error::other("show info ended early"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Appends everything the session sends to the log file until the worker ends, or, once
/// retired, until the ring has been quiet for a while.
async fn stream(
    mut s: tokio::net::UnixStream,
    first: Vec<u8>,
    log: &Path,
    shippers: Shippers,
    retire: CancellationToken,
) -> std::io::Result<()> {
    let mut out = Output {
        file: match shippers.keep_local() {
            true => Some(LogFile::open(log)?),
            false => None,
        },
        shippers,
    };
    let mut pending = first;
    out.write_lines(&mut pending)?;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let read = async {
            match deadline {
                Some(_) => tokio::time::timeout(RETIRE_QUIET, s.read(&mut chunk))
                    .await
                    .ok(),
                None => Some(s.read(&mut chunk).await),
            }
        };
        let n = tokio::select! {
            r = read => match r {
                Some(r) => r?,
                None => return Ok(()),
            },
            _ = retire.cancelled(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + RETIRE_MAX);
                continue;
            }
        };
        if n == 0 {
            return out.write(&pending);
        }
        pending.extend_from_slice(&chunk[..n]);
        out.write_lines(&mut pending)?;
        if deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
            return Ok(());
        }
        if n < chunk.len() {
            // All that was waiting is written: let lines gather (in the socket, then the ring)
            // instead of waking for every few, which would cost both processes a wake-up and
            // a syscall per handful of requests.
            tokio::time::sleep(BATCH).await;
        }
    }
}

/// Where drained lines go: `traffic.log` (unless shipping only) and the shipper.
struct Output {
    file: Option<LogFile>,
    shippers: Shippers,
}

impl Output {
    /// Writes (in one write, so two workers' drains never split each other's lines) and ships
    /// the complete lines of `pending`; keeps the rest.
    fn write_lines(&mut self, pending: &mut Vec<u8>) -> std::io::Result<()> {
        let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        let rest = pending.split_off(end + 1);
        let r = self.write(pending);
        *pending = rest;
        r
    }

    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.shippers.push(lines);
        match &mut self.file {
            Some(f) => f.write(lines),
            None => Ok(()),
        }
    }
}

/// `traffic.log` with size-based rotation.
struct LogFile {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
}

impl LogFile {
    fn open(path: &Path) -> std::io::Result<LogFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
        })
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.size + data.len() as u64 > ROTATE_AT {
            std::fs::rename(&self.path, self.path.with_extension("log.1"))?;
            *self = LogFile::open(&self.path)?;
        }
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }
}
