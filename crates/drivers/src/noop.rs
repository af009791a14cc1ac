//! Noop drivers: nothing is booted, plugged or configured, but every resource a driver holds is
//! recorded as a file under its state directory (`compute/<id>`, `vips/<port>`, `certs/<id>`,
//! `configs/<amphora>`) and removed on release, so tests can prove nothing leaks. Like Octavia's
//! noop network driver, any subnet id is accepted and the VIP address is `198.51.100.1` unless
//! one is requested.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocta_model::{Amphora, Id, LbTree};

use crate::*;

/// The four noop drivers sharing one state directory.
pub fn drivers(state_dir: &Path) -> std::io::Result<Drivers> {
    let dir = Arc::new(NoopState::new(state_dir)?);
    Ok(Drivers {
        compute: Arc::new(NoopCompute(dir.clone())),
        network: Arc::new(NoopNetwork(dir.clone())),
        amphora: Arc::new(NoopAmphora(dir.clone())),
        certs: Arc::new(NoopCerts(dir)),
        tls: Arc::new(NoopTls),
    })
}

/// The noop network driver alone (the API process needs only VIP allocation).
pub fn network(state_dir: &Path) -> std::io::Result<Arc<dyn Network>> {
    Ok(Arc::new(NoopNetwork(Arc::new(NoopState::new(state_dir)?))))
}

/// The recorded resources.
pub struct NoopState {
    root: PathBuf,
}

impl NoopState {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        for d in ["compute", "vips", "certs", "configs"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        Ok(NoopState {
            root: root.to_path_buf(),
        })
    }

    fn put(&self, op: &'static str, kind: &str, id: &str, body: &str) -> DriverResult<()> {
        if id.is_empty() || id.contains(['/', '.']) {
            return Err(DriverError::fatal(op, format!("invalid id {id:?}")));
        }
        // Whole or absent after a crash: a record's owner is always readable.
        rocta_service::fs::replace(&self.root.join(kind).join(id), body.as_bytes(), 0o644)
            .map_err(|e| DriverError::transient(op, e.to_string()))
    }

    fn remove(&self, op: &'static str, kind: &str, id: &str) -> DriverResult<()> {
        if id.is_empty() || id.contains(['/', '.']) {
            return Ok(());
        }
        match std::fs::remove_file(self.root.join(kind).join(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DriverError::transient(op, e.to_string())),
        }
    }

    /// Ids recorded under `kind` (`compute`, `vips`, `certs`, `configs`).
    pub fn recorded(root: &Path, kind: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join(kind))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // Temporary files of a write a crash interrupted are not records.
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

struct NoopCompute(Arc<NoopState>);
struct NoopNetwork(Arc<NoopState>);
struct NoopAmphora(Arc<NoopState>);
struct NoopCerts(Arc<NoopState>);

/// The compute id of an amphora is derived from its id, which makes `create` idempotent.
fn compute_id(amphora_id: Id) -> String {
    uuid::Uuid::new_v5(&amphora_id, b"noop-compute").to_string()
}

#[async_trait::async_trait]
impl Compute for NoopCompute {
    async fn create(&self, amphora_id: Id, _boot: &Boot) -> DriverResult<Instance> {
        let cid = compute_id(amphora_id);
        self.0
            .put("compute create", "compute", &cid, &amphora_id.to_string())?;
        Ok(Instance {
            compute_id: cid,
            lb_network_ip: "192.0.2.1".into(),
        })
    }

    async fn delete(&self, amphora_id: Id) -> DriverResult<()> {
        self.0
            .remove("compute delete", "compute", &compute_id(amphora_id))
    }

    async fn agent_config(&self, amphora_id: Id) -> DriverResult<String> {
        Ok(format!("amphora_id = \"{amphora_id}\"\n"))
    }

    async fn stopped(&self, amphora_id: Id) -> DriverResult<Option<String>> {
        let path = self.0.root.join("compute").join(compute_id(amphora_id));
        Ok((!path.exists()).then(|| "its instance record is gone".to_string()))
    }
}

#[async_trait::async_trait]
impl Network for NoopNetwork {
    /// Noop accepts any flavor, as Octavia's noop network driver.
    fn supports_sriov_vip(&self) -> bool {
        true
    }

    fn supports_udp(&self) -> bool {
        true
    }

    fn udp_least_connections(&self) -> bool {
        true
    }

    async fn allocate_vip(&self, req: &VipRequest) -> Result<Vip, VipError> {
        let port_id = req
            .port_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v5(&req.lb_id, b"noop-vip-port").to_string());
        let vip = Vip {
            address: req.address.clone().unwrap_or_else(|| "198.51.100.1".into()),
            port_id: port_id.clone(),
            subnet_id: req
                .subnet_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v5(&req.lb_id, b"noop-subnet").to_string()),
            network_id: req
                .network_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v5(&req.lb_id, b"noop-network").to_string()),
            additional: req
                .additional
                .iter()
                .zip(2..)
                .map(|(a, i)| AdditionalVipAddress {
                    subnet_id: a.subnet_id.clone(),
                    address: a
                        .address
                        .clone()
                        .unwrap_or_else(|| format!("198.51.100.{i}")),
                })
                .collect(),
        };
        self.0
            .put("allocate vip", "vips", &port_id, &req.lb_id.to_string())?;
        crate::fault::crash_point("allocate_vip");
        Ok(vip)
    }

    async fn deallocate_vip(&self, vip: &Vip) -> DriverResult<()> {
        self.0.remove("deallocate vip", "vips", &vip.port_id)
    }

    async fn deallocate_vips_of(&self, lb_id: Id) -> DriverResult<()> {
        let owner = lb_id.to_string();
        for port in NoopState::recorded(&self.0.root, "vips") {
            let path = self.0.root.join("vips").join(&port);
            if std::fs::read_to_string(path).is_ok_and(|o| o == owner) {
                self.0.remove("deallocate vips", "vips", &port)?;
            }
        }
        Ok(())
    }

    async fn plug_vip(&self, amphora: &Amphora, vip: &Vip) -> DriverResult<VipPlug> {
        Ok(VipPlug {
            vrrp_ip: vip.address.clone(),
            ha_ip: vip.address.clone(),
            vrrp_port_id: uuid::Uuid::new_v5(&amphora.id, b"noop-vrrp-port").to_string(),
            ha_port_id: vip.port_id.clone(),
            ..Default::default()
        })
    }

    async fn unplug_vip(&self, _amphora: &Amphora, _vip: &Vip) -> DriverResult<()> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl AmphoraDriver for NoopAmphora {
    async fn wait_ready(&self, _amphora: &Amphora) -> DriverResult<()> {
        Ok(())
    }

    async fn post_vip_plug(&self, _: &Amphora, _: &Vip, _: &VipPlug) -> DriverResult<()> {
        Ok(())
    }

    async fn apply(&self, amphora: &Amphora, tree: &LbTree, _: &[Peer]) -> DriverResult<()> {
        let listeners = tree.listeners.len();
        self.0.put(
            "apply config",
            "configs",
            &amphora.id.to_string(),
            &format!("listeners={listeners}\n"),
        )
    }

    async fn remove(&self, amphora: &Amphora, _lb_id: Id) -> DriverResult<()> {
        self.0
            .remove("remove config", "configs", &amphora.id.to_string())
    }

    async fn rotate_cert(&self, _: &Amphora, _: &str) -> DriverResult<()> {
        Ok(())
    }

    async fn update_agent_config(&self, _: &Amphora, _: &str) -> DriverResult<()> {
        Ok(())
    }
    async fn update_vrrp(&self, _: &Amphora, _: &VrrpPlan) -> DriverResult<()> {
        Ok(())
    }
    async fn post_network_plug(&self, _: &Amphora, _: &NetworkPlug) -> DriverResult<()> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl CertManager for NoopCerts {
    async fn issue_amphora_cert(&self, amphora_id: Id) -> DriverResult<IssuedCert> {
        self.0
            .put("issue cert", "certs", &amphora_id.to_string(), "noop")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ok(IssuedCert {
            pem: String::new(),
            not_after: now + 30 * 86_400,
        })
    }

    async fn revoke_amphora_cert(&self, amphora_id: Id) -> DriverResult<()> {
        self.0
            .remove("revoke cert", "certs", &amphora_id.to_string())
    }

    fn client_ca_pem(&self) -> String {
        String::new()
    }
}

/// Like Octavia's noop certificate manager: any reference is accepted, and is empty.
pub struct NoopTls;

#[async_trait::async_trait]
impl TlsStore for NoopTls {
    async fn check(&self, _caller_token: Option<&str>, _reference: &str) -> DriverResult<()> {
        Ok(())
    }
    async fn fetch(&self, _reference: &str) -> DriverResult<String> {
        Ok(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_and_releases_idempotently() {
        let d = tempfile::tempdir().unwrap();
        let dr = drivers(d.path()).unwrap();
        let amp = rocta_model::new_id();
        let a = dr.compute.create(amp, &Boot::default()).await.unwrap();
        let b = dr.compute.create(amp, &Boot::default()).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(NoopState::recorded(d.path(), "compute").len(), 1);
        dr.compute.delete(amp).await.unwrap();
        dr.compute.delete(amp).await.unwrap();
        assert!(NoopState::recorded(d.path(), "compute").is_empty());
        assert!(a.compute_id.len() == 36);
    }
}
