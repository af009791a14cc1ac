//! The `loopback` network driver: VIPs come from the subnet `public` (127.10.0.0/16, fixed id
//! `0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b`); members are reachable anywhere on 127.0.0.0/8.
//! Every 127/8 address is already local on Linux, so plugging is bookkeeping. Allocations are
//! files created exclusively under the state directory (`vips/<address>`), so they are unique
//! across processes and survive restarts.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rocta_model::{Amphora, Id};

use crate::*;

/// The id of the `public` VIP subnet.
pub const PUBLIC_SUBNET: &str = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b";
/// The id of the network the `public` subnet belongs to.
pub const PUBLIC_NETWORK: &str = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5a";

pub struct LoopbackNetwork {
    dir: PathBuf,
}

impl LoopbackNetwork {
    pub fn new(state_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(state_dir.join("vips"))?;
        Ok(LoopbackNetwork {
            dir: state_dir.to_path_buf(),
        })
    }

    /// Reserves `ip` for `lb`: the file appears with its owner in it or not at all, so a crash
    /// never leaves a reservation nobody can release.
    fn reserve(&self, ip: Ipv4Addr, lb: Id) -> std::io::Result<bool> {
        let path = self.dir.join("vips").join(ip.to_string());
        if rocta_service::fs::create_exclusive(&path, lb.to_string().as_bytes(), 0o644)? {
            return Ok(true);
        }
        // Idempotent for the same load balancer (a retried allocation).
        Ok(std::fs::read_to_string(&path).is_ok_and(|o| o == lb.to_string()))
    }
}

fn in_public(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 127 && o[1] == 10 && !(o[2] == 0 && o[3] == 0) && !(o[2] == 255 && o[3] == 255)
}

#[async_trait::async_trait]
impl Network for LoopbackNetwork {
    fn networks(&self) -> Vec<NetworkInfo> {
        vec![NetworkInfo {
            id: PUBLIC_NETWORK.into(),
            name: "public".into(),
            subnets: vec![SubnetInfo {
                id: PUBLIC_SUBNET.into(),
                name: "public".into(),
                cidr: "127.10.0.0/16".into(),
                ip_version: 4,
                gateway_ip: None,
                allocation_pools: vec![("127.10.0.1".into(), "127.10.255.254".into())],
            }],
        }]
    }

    async fn allocate_vip(&self, req: &VipRequest) -> Result<Vip, VipError> {
        if let Some(p) = &req.port_id {
            return Err(VipError::Invalid(format!("Port {p} not found.")));
        }
        match (&req.subnet_id, &req.network_id) {
            (Some(s), _) if s != PUBLIC_SUBNET => {
                return Err(VipError::Invalid(format!("Subnet {s} not found.")))
            }
            (None, Some(n)) if n != PUBLIC_NETWORK => {
                return Err(VipError::Invalid(format!("Network {n} not found.")))
            }
            _ => {}
        }
        let io = |e: std::io::Error| {
            VipError::Driver(DriverError::transient("allocate vip", e.to_string()))
        };
        let address = match &req.address {
            Some(a) => {
                let ip: Ipv4Addr = a.parse().map_err(|_| {
                    VipError::Invalid(format!(
                        "IP address {a} is not in subnet {PUBLIC_SUBNET} (127.10.0.0/16)."
                    ))
                })?;
                if !in_public(ip) {
                    return Err(VipError::Invalid(format!(
                        "IP address {a} is not in subnet {PUBLIC_SUBNET} (127.10.0.0/16)."
                    )));
                }
                if !self.reserve(ip, req.lb_id).map_err(io)? {
                    return Err(VipError::Invalid(format!(
                        "IP address {a} is already allocated in subnet {PUBLIC_SUBNET}."
                    )));
                }
                ip
            }
            None => {
                // Start from a point derived from the id, then probe: O(1) on a sparse subnet.
                let start = (req.lb_id.as_u128() % 65_534) as u32 + 1;
                let mut found = None;
                for k in 0..65_534u32 {
                    let n = (start + k - 1) % 65_534 + 1;
                    let ip = Ipv4Addr::new(127, 10, (n >> 8) as u8, (n & 0xff) as u8);
                    if in_public(ip) && self.reserve(ip, req.lb_id).map_err(io)? {
                        found = Some(ip);
                        break;
                    }
                }
                found.ok_or_else(|| {
                    VipError::Invalid(format!(
                        "No more IP addresses available on subnet {PUBLIC_SUBNET}."
                    ))
                })?
            }
        };
        crate::fault::crash_point("allocate_vip");
        Ok(Vip {
            address: address.to_string(),
            port_id: uuid::Uuid::new_v5(&req.lb_id, b"loopback-vip-port").to_string(),
            subnet_id: PUBLIC_SUBNET.into(),
            network_id: PUBLIC_NETWORK.into(),
        })
    }

    async fn deallocate_vip(&self, vip: &Vip) -> DriverResult<()> {
        if vip.address.parse::<Ipv4Addr>().is_ok() {
            match std::fs::remove_file(self.dir.join("vips").join(&vip.address)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DriverError::transient("deallocate vip", e.to_string())),
            }
        }
        Ok(())
    }

    async fn deallocate_vips_of(&self, lb_id: Id) -> DriverResult<()> {
        let err = |e: std::io::Error| DriverError::transient("deallocate vips", e.to_string());
        let owner = lb_id.to_string();
        for entry in std::fs::read_dir(self.dir.join("vips")).map_err(err)? {
            let path = entry.map_err(err)?.path();
            if std::fs::read_to_string(&path).is_ok_and(|o| o == owner) {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn plug_vip(&self, amphora: &Amphora, vip: &Vip) -> DriverResult<VipPlug> {
        Ok(VipPlug {
            vrrp_ip: vip.address.clone(),
            ha_ip: vip.address.clone(),
            vrrp_port_id: uuid::Uuid::new_v5(&amphora.id, b"loopback-vrrp-port").to_string(),
            ha_port_id: vip.port_id.clone(),
        })
    }

    async fn unplug_vip(&self, _amphora: &Amphora, _vip: &Vip) -> DriverResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allocates_unique_public_addresses() {
        let d = tempfile::tempdir().unwrap();
        let n = LoopbackNetwork::new(d.path()).unwrap();
        let req = |lb: Id, addr: Option<&str>| VipRequest {
            lb_id: lb,
            subnet_id: Some(PUBLIC_SUBNET.into()),
            address: addr.map(str::to_string),
            ..Default::default()
        };
        let (a, b) = (rocta_model::new_id(), rocta_model::new_id());
        let va = n.allocate_vip(&req(a, None)).await.unwrap();
        let vb = n.allocate_vip(&req(b, None)).await.unwrap();
        assert_ne!(va.address, vb.address);
        assert!(va.address.starts_with("127.10."));
        assert!(matches!(
            n.allocate_vip(&req(b, Some(&va.address))).await,
            Err(VipError::Invalid(_))
        ));
        assert!(matches!(
            n.allocate_vip(&req(b, Some("10.0.0.1"))).await,
            Err(VipError::Invalid(_))
        ));
        let other = VipRequest {
            lb_id: a,
            subnet_id: Some("11111111-2222-3333-4444-555555555555".into()),
            ..Default::default()
        };
        assert!(
            matches!(n.allocate_vip(&other).await, Err(VipError::Invalid(m)) if m.contains("not found"))
        );
        n.deallocate_vip(&va).await.unwrap();
        assert_eq!(
            n.allocate_vip(&req(b, Some(&va.address)))
                .await
                .unwrap()
                .address,
            va.address
        );
    }
}
