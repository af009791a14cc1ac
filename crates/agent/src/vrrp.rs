//! keepalived for ACTIVE_STANDBY (Octavia's `PUT /vrrp/upload` and `PUT /vrrp/<action>`): the
//! controller's configuration is checked with `keepalived -t` before it replaces the running
//! one; keepalived runs daemonized (VRRP only) in the amphora's namespace with its pid files
//! under `<base>/vrrp/`, so it outlives an agent restart as HAProxy does. Its check script
//! (`<base>/vrrp/check.sh`, written here) fails while the HAProxy of any load balancer of the
//! amphora is down, so the peer takes the VIP.

use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The keepalived of one amphora.
#[derive(Debug, Clone)]
pub struct Keepalived {
    base: PathBuf,
    dir: PathBuf,
}

/// Why a VRRP request failed.
#[derive(Debug)]
pub enum VrrpError {
    /// 400: `keepalived -t` refused the configuration (its output).
    Invalid(String),
    /// 500.
    Failed(String),
}

impl Keepalived {
    pub fn new(base: &Path) -> Keepalived {
        Keepalived {
            base: base.to_path_buf(),
            dir: base.join("vrrp"),
        }
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.join("keepalived.conf")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("keepalived.pid")
    }

    /// The script keepalived runs to follow HAProxy's health.
    pub fn check_script(&self) -> String {
        format!(
            "#!/bin/sh\n\
             # Written by the rocta agent: healthy while the HAProxy of every load balancer of\n\
             # this amphora runs (and when there is none).\n\
             for p in {base}/*/haproxy.pid; do\n\
             \x20 [ -e \"$p\" ] || continue\n\
             \x20 kill -0 \"$(head -n1 \"$p\")\" 2>/dev/null || exit 1\n\
             done\n\
             exit 0\n",
            base = self.base.display()
        )
    }

    /// Checks and installs a configuration (and the check script it runs).
    pub async fn upload(&self, text: &[u8]) -> Result<(), VrrpError> {
        let fail = |e: std::io::Error| VrrpError::Failed(e.to_string());
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        rocta_service::atomic_write(
            &self.dir.join("check.sh"),
            self.check_script().as_bytes(),
            0o700,
        )
        .map_err(fail)?;
        let new = self.dir.join("keepalived.conf.new");
        rocta_service::atomic_write(&new, text, 0o600).map_err(fail)?;
        let out = tokio::process::Command::new("keepalived")
            .args(["-t", "-f"])
            .arg(&new)
            .output()
            .await
            .map_err(|e| VrrpError::Failed(format!("cannot run keepalived: {e}")))?;
        if !out.status.success() {
            let mut why = String::from_utf8_lossy(&out.stderr).into_owned();
            why.push_str(&String::from_utf8_lossy(&out.stdout));
            return Err(VrrpError::Invalid(why.trim().to_string()));
        }
        std::fs::rename(&new, self.conf()).map_err(fail)
    }

    /// keepalived's pid while it runs.
    pub fn running(&self) -> Option<i32> {
        crate::haproxy::live_pid(&self.pid_file())
    }

    /// `start` (a running keepalived reloads), `stop` or `reload`; the words of the reply.
    pub async fn act(&self, action: &str) -> Result<String, VrrpError> {
        match (action, self.running()) {
            ("stop", Some(pid)) => {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                for _ in 0..100 {
                    if self.running().is_none() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Ok("keepalived stopped".into())
            }
            ("stop", None) => Ok("keepalived stopped".into()),
            ("start" | "reload", Some(pid)) => {
                kill(Pid::from_raw(pid), Signal::SIGHUP)
                    .map_err(|e| VrrpError::Failed(format!("reloading keepalived: {e}")))?;
                Ok(format!("keepalived {action}ed"))
            }
            ("start" | "reload", None) => {
                if !self.conf().exists() {
                    return Err(VrrpError::Invalid(
                        "no keepalived configuration uploaded".into(),
                    ));
                }
                let out = tokio::process::Command::new("keepalived")
                    .arg("--vrrp")
                    .arg("-f")
                    .arg(self.conf())
                    .arg("-p")
                    .arg(self.pid_file())
                    .arg("-r")
                    .arg(self.dir.join("vrrp.pid"))
                    .output()
                    .await
                    .map_err(|e| VrrpError::Failed(format!("cannot run keepalived: {e}")))?;
                if !out.status.success() {
                    return Err(VrrpError::Failed(
                        String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    ));
                }
                // It daemonizes: started once its pid file names a live process.
                for _ in 0..250 {
                    if self.running().is_some() {
                        return Ok(format!("keepalived {action}ed"));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(VrrpError::Failed("keepalived did not start".into()))
            }
            (other, _) => Err(VrrpError::Invalid(format!("Unknown action: {other}"))),
        }
    }
}
