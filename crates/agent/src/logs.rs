//! Per-request logs: HAProxy writes them into an in-memory ring (no syscall per request, see the
//! renderer); the agent drains each load balancer's ring into `<lb>/traffic.log` (rotated to
//! `traffic.log.1` at [`ROTATE_AT`]) through the stats socket (`show events <ring> -w`).
//!
//! Each worker has its own ring, so after a reload the new worker is followed too. A waiting
//! `show events` session keeps an old worker alive, so the old worker's session is closed once
//! its ring has been quiet for [`RETIRE_QUIET`] (or after [`RETIRE_MAX`]).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Size at which `traffic.log` is rotated (one older file is kept).
pub const ROTATE_AT: u64 = 16 << 20;
const RETIRE_QUIET: Duration = Duration::from_secs(2);
const RETIRE_MAX: Duration = Duration::from_secs(60);

/// The worker currently followed per load balancer, and how to retire its session.
#[derive(Debug, Clone, Default)]
pub struct Drains {
    followed: Arc<Mutex<HashMap<String, (i32, CancellationToken)>>>,
}

impl Drains {
    /// Follows the current worker of `lb` (no-op when it is already followed). Returns at once;
    /// the work happens in a task.
    pub fn follow(&self, lb: &str, socket: String, ring: String, log: PathBuf) {
        let this = self.clone();
        let lb = lb.to_string();
        let before = self.current(&lb);
        tokio::spawn(async move {
            // Right after a reload the old worker may still accept on the shared socket.
            for _ in 0..100 {
                match this.attach(&lb, before, &socket, &ring, &log).await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => tracing::debug!(%lb, error = %e, "following the log ring"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    fn current(&self, lb: &str) -> Option<i32> {
        let map = self.followed.lock().unwrap_or_else(|e| e.into_inner());
        map.get(lb).map(|(pid, _)| *pid)
    }

    /// Stops following `lb` (its HAProxy is stopping).
    pub fn forget(&self, lb: &str) {
        if let Some((_, t)) = self
            .followed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(lb)
        {
            t.cancel();
        }
    }

    /// One attempt: `Ok(true)` when a worker other than `before` is now followed, `Ok(false)`
    /// when the socket answered from `before` (still the old worker).
    async fn attach(
        &self,
        lb: &str,
        before: Option<i32>,
        socket: &str,
        ring: &str,
        log: &Path,
    ) -> std::io::Result<bool> {
        let mut s = crate::haproxy::stats_connect(socket).await?;
        s.write_all(format!("show info; show events {ring} -w\n").as_bytes())
            .await?;
        let (pid, rest) = read_pid(&mut s).await?;
        let retire = CancellationToken::new();
        {
            let mut map = self.followed.lock().unwrap_or_else(|e| e.into_inner());
            if before == Some(pid) {
                return Ok(false);
            }
            if let Some((old, token)) = map.get(lb) {
                if *old == pid {
                    return Ok(true);
                }
                token.cancel();
            }
            map.insert(lb.to_string(), (pid, retire.clone()));
        }
        let log = log.to_path_buf();
        tokio::spawn(async move {
            if let Err(e) = stream(s, rest, &log, retire).await {
                tracing::debug!(path = %log.display(), error = %e, "log ring drain ended");
            }
        });
        Ok(true)
    }
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
    retire: CancellationToken,
) -> std::io::Result<()> {
    let mut out = LogFile::open(log)?;
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

    /// Writes the complete lines of `pending` (one write, so two workers' drains never split
    /// each other's lines) and keeps the rest.
    fn write_lines(&mut self, pending: &mut Vec<u8>) -> std::io::Result<()> {
        let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        let rest = pending.split_off(end + 1);
        self.write(pending)?;
        *pending = rest;
        Ok(())
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
