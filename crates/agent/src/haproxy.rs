//! HAProxy supervision: one master-worker HAProxy per load balancer, a detached child of the
//! agent that outlives it (a restarted agent finds it again through its pid file). Configurations are
//! validated with `haproxy -c` before they replace the running one; reloads are SIGUSR2 to the
//! master, which passes the listening sockets to the new worker (`expose-fd listeners`), so no
//! connection is refused during a reload.
//!
//! Layout of one load balancer under the base directory: `<lb>/haproxy.cfg`, `<lb>/haproxy.pid`,
//! `<lb>/<lb>.sock` (stats), `<lb>/<lb>.state` (server state), `<lb>/certs/`.

use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rocta_haproxy::{EMPTY_SERVER_STATE, PING_WRAPPER, PING_WRAPPER_SCRIPT};
use rocta_service::atomic_write;

/// What HAProxy says about a failed check or start.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Supervisor {
    base: PathBuf,
    bin: String,
    amphora_id: String,
    drains: crate::logs::Drains,
}

impl Supervisor {
    pub fn new(
        base: &Path,
        bin: &str,
        amphora_id: &str,
        shippers: crate::shipping::Shippers,
    ) -> Self {
        Supervisor {
            base: base.to_path_buf(),
            bin: bin.to_string(),
            amphora_id: amphora_id.to_string(),
            drains: crate::logs::Drains::new(shippers),
        }
    }

    /// Where the logs are shipped, if anywhere.
    pub fn shippers(&self) -> &crate::shipping::Shippers {
        self.drains.shippers()
    }

    fn stats_socket(&self, lb: &str) -> String {
        rocta_haproxy::stats_socket_name(&self.amphora_id, lb.parse().unwrap_or_default())
    }

    /// Drains the per-request log ring of `lb`'s current worker into `<lb>/traffic.log`, when
    /// its configuration logs to a ring.
    pub fn follow_logs(&self, lb: &str) {
        let ring = rocta_haproxy::ring_name(lb.parse().unwrap_or_default());
        let logs_to_ring = std::fs::read_to_string(self.cfg(lb))
            .is_ok_and(|c| c.contains(&format!("\nring {ring}\n")));
        if logs_to_ring {
            self.drains.follow(
                lb,
                self.stats_socket(lb),
                ring,
                self.dir(lb).join("traffic.log"),
            );
        } else {
            // Per-request logging was turned off (or goes to syslog): nothing to drain.
            self.drains.forget(lb);
        }
    }

    /// The directory of a load balancer (also the `run_dir` the controller renders with).
    pub fn dir(&self, lb: &str) -> PathBuf {
        self.base.join(lb)
    }

    pub fn cfg(&self, lb: &str) -> PathBuf {
        self.dir(lb).join("haproxy.cfg")
    }

    /// The configuration the running HAProxy has (file and runtime changes included): what a
    /// runtime change is planned from.
    fn running_cfg(&self, lb: &str) -> PathBuf {
        self.dir(lb).join("haproxy.cfg.running")
    }

    /// The configuration a running HAProxy of `lb` serves, `None` when it does not run.
    pub fn running_config(&self, lb: &str) -> Option<Vec<u8>> {
        self.running(lb)?;
        std::fs::read(self.running_cfg(lb)).ok()
    }

    /// Present while the installed configuration has not been through `haproxy -c` (it
    /// differs from the running one only in member lines, see `install`).
    fn unchecked(&self, lb: &str) -> PathBuf {
        self.dir(lb).join("haproxy.cfg.unchecked")
    }

    /// Records that HAProxy now runs the installed configuration.
    fn mark_running(&self, lb: &str) {
        let _ = std::fs::remove_file(self.unchecked(lb));
        if let Err(e) = std::fs::copy(self.cfg(lb), self.running_cfg(lb)) {
            tracing::warn!(%lb, error = %e, "recording the running configuration failed");
            let _ = std::fs::remove_file(self.running_cfg(lb));
        }
    }

    fn pid_file(&self, lb: &str) -> PathBuf {
        self.dir(lb).join("haproxy.pid")
    }

    /// Load balancers with a configuration on this amphora.
    pub fn load_balancers(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.base)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.path().join("haproxy.cfg").exists())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn version(&self) -> String {
        std::process::Command::new(&self.bin)
            .arg("-v")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .nth(2)
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }

    /// `-L <this amphora's peer name>` when the configuration has a `peers` section (an
    /// ACTIVE_STANDBY pair, as Octavia), else nothing: given without one it disturbed the
    /// draining of old workers on reloads (agent test, one run in three).
    fn peer_args(&self, cfg: &Path) -> Vec<String> {
        let has_peers =
            std::fs::read_to_string(cfg).is_ok_and(|t| t.lines().any(|l| l.starts_with("peers ")));
        if has_peers {
            vec!["-L".into(), rocta_haproxy::peer_name(&self.amphora_id)]
        } else {
            Vec::new()
        }
    }

    async fn check(&self, cfg: &Path) -> Result<(), HaproxyError> {
        let out = tokio::process::Command::new(&self.bin)
            .args(self.peer_args(cfg))
            .arg("-c")
            .arg("-f")
            .arg(cfg)
            .output()
            .await
            .map_err(|e| HaproxyError::Failed(format!("running {}: {e}", self.bin)))?;
        if out.status.success() {
            Ok(())
        } else {
            let mut msg = String::from_utf8_lossy(&out.stdout).to_string();
            msg.push_str(&String::from_utf8_lossy(&out.stderr));
            Err(HaproxyError::Invalid(msg.trim().to_string()))
        }
    }

    /// Validates `text` and, if HAProxy accepts it, makes it the configuration of `lb` (not yet
    /// loaded: `start`/`reload` do that). A refused config is kept as `haproxy.cfg.new-failed`
    /// and the current one is untouched.
    pub async fn install(&self, lb: &str, text: &[u8]) -> Result<(), HaproxyError> {
        let dir = self.dir(lb);
        std::fs::create_dir_all(dir.join("certs"))
            .map_err(|e| HaproxyError::Failed(e.to_string()))?;
        let state = dir.join(format!("{lb}.state"));
        if !state.exists() {
            atomic_write(&state, EMPTY_SERVER_STATE.as_bytes(), 0o644)
                .map_err(|e| HaproxyError::Failed(e.to_string()))?;
        }
        write_ping_wrapper(&dir.join(PING_WRAPPER))
            .map_err(|e| HaproxyError::Failed(e.to_string()))?;
        let new = dir.join("haproxy.cfg.new");
        atomic_write(&new, text, 0o600).map_err(|e| HaproxyError::Failed(e.to_string()))?;
        // Only member lines differ from what runs: HAProxy parses them when the runtime API
        // applies them (`reload`), which costs nothing, where `haproxy -c` costs tens of
        // milliseconds; should the runtime API refuse one, `reload` validates the file then and
        // puts the running one back if it is refused.
        let runtime = self
            .running_config(lb)
            .and_then(|old| {
                rocta_haproxy::runtime::plan(
                    &String::from_utf8_lossy(&old),
                    &String::from_utf8_lossy(text),
                )
            })
            .is_some();
        tracing::debug!(%lb, bytes = text.len(), runtime, "configuration uploaded");
        if runtime {
            atomic_write(&self.unchecked(lb), b"", 0o600)
                .map_err(|e| HaproxyError::Failed(e.to_string()))?;
        } else if let Err(e) = self.check(&new).await {
            let _ = std::fs::rename(&new, dir.join("haproxy.cfg.new-failed"));
            return Err(e);
        } else {
            let _ = std::fs::remove_file(self.unchecked(lb));
        }
        std::fs::rename(&new, self.cfg(lb))
            .and_then(|()| std::fs::File::open(&dir)?.sync_all())
            .map_err(|e| HaproxyError::Failed(e.to_string()))
    }

    /// The master's pid when it runs.
    pub fn running(&self, lb: &str) -> Option<i32> {
        live_pid(&self.pid_file(lb))
    }

    /// Starts HAProxy for `lb`, or reloads it when it runs.
    pub async fn start(&self, lb: &str) -> Result<String, HaproxyError> {
        match self.running(lb) {
            Some(pid) => {
                self.check_unchecked(lb).await?;
                self.signal_reload(lb, pid).await
            }
            None => self.spawn(lb).await,
        }
    }

    /// Starts the master in the foreground of its own (detached) child process, so it stays in
    /// the amphora's process group (deleting the amphora ends it) yet outlives an agent restart.
    async fn spawn(&self, lb: &str) -> Result<String, HaproxyError> {
        let cfg = self.cfg(lb);
        self.check(&cfg).await?;
        let pid_file = self.pid_file(lb);
        let _ = std::fs::remove_file(&pid_file);
        let log_path = self.dir(lb).join("haproxy.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| HaproxyError::Failed(e.to_string()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| HaproxyError::Failed(e.to_string()))?;
        let mut child = tokio::process::Command::new(&self.bin)
            .args(self.peer_args(&cfg))
            .arg("-W")
            .arg("-f")
            .arg(&cfg)
            .arg("-p")
            .arg(&pid_file)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| HaproxyError::Failed(format!("running {}: {e}", self.bin)))?;
        for _ in 0..500 {
            if let Ok(Some(status)) = child.try_wait() {
                let out = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(HaproxyError::Failed(format!(
                    "haproxy exited ({status}): {}",
                    out.trim()
                )));
            }
            if self.running(lb).is_some() {
                self.mark_running(lb);
                self.follow_logs(lb);
                return Ok(format!("haproxy daemon for {lb} started"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Err(HaproxyError::Failed(
            "haproxy did not start within 5 s".into(),
        ))
    }

    /// Makes the running HAProxy serve the installed configuration without dropping
    /// connections: through the runtime API when only members changed (or nothing at all),
    /// else by a reload (starts it when it is not running).
    pub async fn reload(&self, lb: &str) -> Result<String, HaproxyError> {
        match self.running(lb) {
            Some(pid) => match self.apply_runtime(lb).await {
                Some(done) => Ok(done),
                None => {
                    self.check_unchecked(lb).await?;
                    self.signal_reload(lb, pid).await
                }
            },
            None => self.spawn(lb).await,
        }
    }

    /// Validates an installed configuration that skipped `haproxy -c` before it is reloaded;
    /// if HAProxy refuses it, the configuration that runs becomes the installed one again
    /// (kept as `haproxy.cfg.new-failed`, as `install` does) and, since runtime commands may
    /// have changed the running state meanwhile, HAProxy reloads from it.
    async fn check_unchecked(&self, lb: &str) -> Result<(), HaproxyError> {
        if !self.unchecked(lb).exists() {
            return Ok(());
        }
        let Err(e) = self.check(&self.cfg(lb)).await else {
            let _ = std::fs::remove_file(self.unchecked(lb));
            return Ok(());
        };
        let dir = self.dir(lb);
        let _ = std::fs::copy(self.cfg(lb), dir.join("haproxy.cfg.new-failed"));
        std::fs::copy(self.running_cfg(lb), self.cfg(lb))
            .map_err(|e| HaproxyError::Failed(e.to_string()))?;
        let _ = std::fs::remove_file(self.unchecked(lb));
        if let Some(pid) = self.running(lb) {
            self.signal_reload(lb, pid).await?;
        }
        Err(e)
    }

    /// Applies the installed configuration through the stats socket when
    /// `rocta_haproxy::runtime` can (the configuration validated at upload is written already,
    /// so a later reload or restart agrees). `None`: a reload is needed (it cannot, or HAProxy
    /// refused a command: the reload then restores exactly what the file says).
    async fn apply_runtime(&self, lb: &str) -> Option<String> {
        let old = std::fs::read_to_string(self.running_cfg(lb)).ok()?;
        let new = std::fs::read_to_string(self.cfg(lb)).ok()?;
        let ops = rocta_haproxy::runtime::plan(&old, &new)?;
        if ops.is_empty() {
            return Some(format!("haproxy daemon for {lb} unchanged"));
        }
        let sock = self.stats_socket(lb);
        for op in &ops {
            let answer = match stats_command(&sock, op).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(%lb, %op, error = %e, "runtime change failed: reloading");
                    return None;
                }
            };
            let answer = answer.trim();
            // `add server` and `del server` say so; the other commands answer nothing.
            let ok = answer.is_empty()
                || answer == "New server registered."
                || answer == "Server deleted.";
            if !ok {
                tracing::debug!(%lb, %op, %answer, "runtime change refused: reloading");
                return None;
            }
        }
        self.mark_running(lb);
        Some(format!(
            "haproxy daemon for {lb} changed at runtime ({} commands)",
            ops.len()
        ))
    }

    async fn signal_reload(&self, lb: &str, pid: i32) -> Result<String, HaproxyError> {
        // `install` validated the file (or `check_unchecked` did) under the same lock: a
        // second `haproxy -c` would cost as much again for nothing.
        if self.unchecked(lb).exists() {
            self.check(&self.cfg(lb)).await?;
        }
        let old = self.worker_pid(lb).await;
        self.prepare_reload(lb).await;
        kill(Pid::from_raw(pid), Signal::SIGUSR2)
            .map_err(|e| HaproxyError::Failed(format!("signalling haproxy: {e}")))?;
        // The reload is done when a new worker answers on the stats socket: only then is the
        // new configuration live, and only then may the next reload be signalled (a signal
        // during the master's re-exec could be lost).
        if let Some(old) = old {
            for _ in 0..500 {
                if self.worker_pid(lb).await.is_some_and(|p| p != old) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        self.mark_running(lb);
        self.follow_logs(lb);
        Ok(format!("haproxy daemon for {lb} reloaded"))
    }

    /// The pid of the worker answering on the stats socket.
    async fn worker_pid(&self, lb: &str) -> Option<i32> {
        worker_pid(&self.stats_socket(lb)).await.ok()
    }

    /// Every process (master and workers, old ones included) running this load balancer's
    /// configuration in this amphora's network namespace: another amphora on the same host
    /// (sharing its process table, as the test hypervisor's do) may run the same load
    /// balancer's configuration at the same path (Octavia's `/var/lib/octavia/<lb>`), and is
    /// none of this agent's business.
    fn processes(&self, lb: &str) -> Vec<i32> {
        let cfg = self.cfg(lb).display().to_string();
        let netns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
        let own = netns("self");
        std::fs::read_dir("/proc")
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
                    .filter(|pid| {
                        std::fs::read(format!("/proc/{pid}/cmdline"))
                            .map(|c| c.split(|b| *b == 0).any(|arg| arg == cfg.as_bytes()))
                            .unwrap_or(false)
                            && netns(&pid.to_string()) == own
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Before a reload, through the running worker's stats socket: saves the server state (so
    /// health verdicts survive the reload, as Octavia does) and sets `proc.rocta_drain`, which
    /// makes every HTTP response of this (old) worker carry `Connection: close` (see the
    /// renderer). Busy keep-alive clients then reconnect within the drain period instead of
    /// racing the close of their idle connection when the old worker stops: HAProxy 2.6 closes
    /// idle keep-alive connections at once on soft-stop (`idle-close-on-response` is 2.7+).
    async fn prepare_reload(&self, lb: &str) {
        let sock = self.stats_socket(lb);
        match stats_command(&sock, "show servers state").await {
            Ok(state) if state.starts_with('1') => {
                let path = self.dir(lb).join(format!("{lb}.state"));
                if let Err(e) = atomic_write(&path, state.as_bytes(), 0o644) {
                    tracing::warn!(%lb, error = %e, "saving server state failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%lb, error = %e, "saving server state failed"),
        }
        // Nothing to drain while no connection is open (a new load balancer being built).
        let idle = stats_command(&sock, "show info")
            .await
            .is_ok_and(|info| info.lines().any(|l| l.trim() == "CurrConns: 0"));
        if idle {
            return;
        }
        match stats_command(
            &sock,
            "experimental-mode on; set var proc.rocta_drain int(1)",
        )
        .await
        {
            Ok(_) => tokio::time::sleep(DRAIN).await,
            Err(e) => tracing::debug!(%lb, error = %e, "draining keep-alive connections failed"),
        }
    }

    /// Stops HAProxy for `lb`, master and workers (idempotent).
    pub async fn stop(&self, lb: &str) -> Result<String, HaproxyError> {
        self.drains.forget(lb);
        if let Some(pid) = self.running(lb) {
            kill(Pid::from_raw(pid), Signal::SIGTERM)
                .map_err(|e| HaproxyError::Failed(format!("signalling haproxy: {e}")))?;
        }
        for round in 0..300 {
            let left = self.processes(lb);
            if left.is_empty() {
                break;
            }
            // Stragglers after 2 s (an old worker that ignored the stop) are killed.
            let sig = if round < 200 {
                Signal::SIGTERM
            } else {
                Signal::SIGKILL
            };
            for p in left {
                let _ = kill(Pid::from_raw(p), sig);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let _ = std::fs::remove_file(self.pid_file(lb));
        Ok(format!("haproxy daemon for {lb} stopped"))
    }

    /// Stops HAProxy and removes everything of `lb`.
    pub async fn delete(&self, lb: &str) -> Result<(), HaproxyError> {
        self.stop(lb).await?;
        match std::fs::remove_dir_all(self.dir(lb)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(HaproxyError::Failed(e.to_string())),
        }
    }
}

/// How long the old worker answers with `Connection: close` before it is told to stop.
const DRAIN: std::time::Duration = std::time::Duration::from_millis(100);

/// The external check of PING monitors, executable by HAProxy (rewritten when it differs).
fn write_ping_wrapper(path: &Path) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == PING_WRAPPER_SCRIPT) {
        return Ok(());
    }
    atomic_write(path, PING_WRAPPER_SCRIPT.as_bytes(), 0o755)
}

/// Connects to a stats socket (an abstract unix socket name).
pub async fn stats_connect(name: &str) -> std::io::Result<tokio::net::UnixStream> {
    let std_stream = std::os::unix::net::UnixStream::connect_addr(&abns_addr(name)?)?;
    std_stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(std_stream)
}

/// The address of HAProxy's `abns@<name>` socket: the whole `sun_path`, the name padded with
/// NULs.
pub fn abns_addr(name: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    let mut padded = name.as_bytes().to_vec();
    padded.resize(107, 0);
    std::os::unix::net::SocketAddr::from_abstract_name(&padded)
}

/// The pid a pid file names while that process runs (a zombie, dead but not yet reaped, does
/// not count).
pub fn live_pid(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    (state != "Z" && state != "X").then_some(pid)
}

/// The pid of the worker answering on a stats socket.
pub async fn worker_pid(socket: &str) -> std::io::Result<i32> {
    let info = stats_command(socket, "show info").await?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid: "))
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("no Pid in show info"))
}

/// Sends one command line to a stats socket (an abstract unix socket name) and returns the
/// answer.
pub async fn stats_command(name: &str, cmd: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = stats_connect(name).await?;
        s.write_all(format!("{cmd}\n").as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "stats socket timeout"))?
}
