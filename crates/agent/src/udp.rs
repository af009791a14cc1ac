//! UDP and SCTP listeners, forwarded in the kernel with nftables (Octavia uses keepalived's
//! LVS, which these kernels lack). The controller sends what to forward as JSON
//! (`rocta_haproxy::nft::UdpService`, `PUT /1.0/loadbalancer/{amphora}/{lb}/udp`); the agent
//! renders it with `rocta_haproxy::nft`, turns on IP forwarding in its namespace, and applies
//! the load balancer's table with one `nft -f` (one transaction: the table is replaced whole
//! or not at all, and flows already tracked keep their member).
//!
//! Layout under a load balancer's directory: `udp.json` (what the controller sent), `udp.nft`
//! (what was applied).

use std::path::{Path, PathBuf};

use rocta_haproxy::nft::{self, UdpService};
use rocta_service::atomic_write;

/// Why a UDP configuration was not applied.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// The controller asked for something that cannot be forwarded (the agent's 400).
    #[error("{0}")]
    Invalid(String),
    /// The amphora could not apply it (the agent's 500).
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Udp {
    base: PathBuf,
}

impl Udp {
    pub fn new(base: &Path) -> Self {
        Udp {
            base: base.to_path_buf(),
        }
    }

    fn dir(&self, lb: &str) -> PathBuf {
        self.base.join(lb)
    }

    /// Forwards what `service` describes for load balancer `lb`. Idempotent.
    pub async fn apply(&self, lb: &str, service: &UdpService) -> Result<(), UdpError> {
        if service.lb_id.to_string() != lb {
            return Err(UdpError::Invalid(format!(
                "the body is for load balancer {}, not {lb}",
                service.lb_id
            )));
        }
        // Every enabled member takes flows until the monitors say otherwise.
        let ruleset =
            nft::render(service, &|_| true).map_err(|e| UdpError::Invalid(e.to_string()))?;
        let dir = self.dir(lb);
        let failed = |e: std::io::Error| UdpError::Failed(e.to_string());
        std::fs::create_dir_all(&dir).map_err(failed)?;
        let json = serde_json::to_vec(service).map_err(|e| UdpError::Failed(e.to_string()))?;
        atomic_write(&dir.join("udp.json"), &json, 0o600).map_err(failed)?;
        let file = dir.join("udp.nft");
        atomic_write(&file, ruleset.as_bytes(), 0o600).map_err(failed)?;
        forwarding(service.vip.contains(':')).map_err(failed)?;
        run_nft(&file).await
    }

    /// Stops forwarding for load balancer `lb` (its table removed). Idempotent.
    pub async fn remove(&self, lb: &str) -> Result<(), UdpError> {
        let Ok(id) = lb.parse() else {
            return Ok(());
        };
        let dir = self.dir(lb);
        let had = dir.join("udp.json").exists();
        if had {
            let file = dir.join("udp-delete.nft");
            atomic_write(&file, nft::render_delete(id).as_bytes(), 0o600)
                .map_err(|e| UdpError::Failed(e.to_string()))?;
            run_nft(&file).await?;
        }
        for f in ["udp.json", "udp.nft", "udp-delete.nft"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        Ok(())
    }

    /// The load balancers that forward UDP or SCTP listeners here.
    pub fn load_balancers(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.base) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("udp.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    }
}

/// Turns on IP forwarding in this namespace (the kernel forwards the DNAT'ed packets).
fn forwarding(v6: bool) -> std::io::Result<()> {
    let path = if v6 {
        "/proc/sys/net/ipv6/conf/all/forwarding"
    } else {
        "/proc/sys/net/ipv4/ip_forward"
    };
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1")
}

/// `nft -f file`: one transaction. A ruleset the kernel refuses is the controller's error.
async fn run_nft(file: &Path) -> Result<(), UdpError> {
    let out = tokio::process::Command::new("nft")
        .arg("-f")
        .arg(file)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| UdpError::Failed(format!("cannot run nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(UdpError::Invalid(format!(
            "nft -f {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
