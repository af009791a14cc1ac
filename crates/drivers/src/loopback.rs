//! The `loopback` network driver: VIPs come from the subnet `public` (127.10.0.0/16, fixed id
//! `0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b`); members are reachable anywhere on 127.0.0.0/8.
//! Every 127/8 address is already local on Linux, so plugging is bookkeeping. Allocations are
//! reservations of an [`AddressPool`] (`vips/<address>`).

use std::net::Ipv4Addr;
use std::path::Path;

use rocta_model::{Amphora, Id};

use crate::addresses::{allocate_vip as allocate, release_vip as release, AddressPool};
use crate::*;

/// The id of the `public` VIP subnet.
pub const PUBLIC_SUBNET: &str = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b";
/// The id of the network the `public` subnet belongs to.
pub const PUBLIC_NETWORK: &str = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5a";

pub struct LoopbackNetwork {
    vips: AddressPool,
}

impl LoopbackNetwork {
    pub fn new(state_dir: &Path) -> std::io::Result<Self> {
        Ok(LoopbackNetwork {
            vips: AddressPool::new(
                &state_dir.join("vips"),
                Ipv4Addr::new(127, 10, 0, 1),
                Ipv4Addr::new(127, 10, 255, 254),
            )?,
        })
    }
}

#[async_trait::async_trait]
impl Network for LoopbackNetwork {
    async fn has_network(&self, id: &str) -> bool {
        id == PUBLIC_NETWORK
    }

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
        // One subnet: an additional VIP has nowhere to come from.
        if let Some(a) = req.additional.first() {
            return Err(VipError::Invalid(format!(
                "Subnet {} not found.",
                a.subnet_id
            )));
        }
        let subnet = format!("{PUBLIC_SUBNET} (127.10.0.0/16)");
        let address = allocate(&self.vips, req, &subnet)?;
        crate::fault::crash_point("allocate_vip");
        Ok(Vip {
            address: address.to_string(),
            port_id: uuid::Uuid::new_v5(&req.lb_id, b"loopback-vip-port").to_string(),
            subnet_id: PUBLIC_SUBNET.into(),
            network_id: PUBLIC_NETWORK.into(),
            additional: Vec::new(),
        })
    }

    async fn deallocate_vip(&self, vip: &Vip) -> DriverResult<()> {
        release(&self.vips, vip)
    }

    async fn deallocate_vips_of(&self, lb_id: Id) -> DriverResult<()> {
        self.vips
            .release_owned_by(&lb_id.to_string())
            .map_err(|e| DriverError::transient("deallocate vips", e.to_string()))
    }

    async fn plug_vip(&self, amphora: &Amphora, vip: &Vip) -> DriverResult<VipPlug> {
        Ok(VipPlug {
            vrrp_ip: vip.address.clone(),
            ha_ip: vip.address.clone(),
            vrrp_port_id: uuid::Uuid::new_v5(&amphora.id, b"loopback-vrrp-port").to_string(),
            ha_port_id: vip.port_id.clone(),
            ..Default::default()
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
