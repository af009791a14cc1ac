//! `[netns]`: the networks of amphorae that are network namespaces.

use serde::Deserialize;

/// `[netns]`: the load-balancer management network that `rocta network setup` builds on this
/// host (Octavia's `o-hm0` and its bridge), for amphorae that are network namespaces.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Netns {
    /// The bridge the amphorae's management interfaces plug into.
    pub management_bridge: String,
    /// The management subnet. Its first ten addresses (at most half of it) are the hosts'
    /// ports (controllers, compute hosts); amphorae get the rest.
    pub management_cidr: String,
    /// Its Neutron-style id (what `[controller_worker] amp_boot_network_list` names).
    pub management_network_id: String,
    /// This host's address on it; empty: the subnet's first address. Each host joined to
    /// the same management network over VXLAN has its own.
    pub host_address: String,
    /// The network namespace standing for the host amphorae are plugged on (its management
    /// and tenant bridges, built there by `rocta network setup`); empty: this host. With it
    /// a control plane drives amphorae of another "host" across the management network
    /// (the two-host tests).
    pub amphora_host_netns: String,
    /// Compute zones (`[[netns.compute_zones]]`, what an availability zone profile's
    /// `compute_zone` names): the host each one's amphorae are plugged on. Amphorae without
    /// a zone go on `amphora_host_netns`; a zone not listed here is refused (the API's 400
    /// on the profile, a failed boot if the list changed since).
    pub compute_zones: Vec<ComputeZone>,
    /// The controller's port on the bridge (a veth; its peer is `<name>-br`).
    pub host_port: String,
    /// The amphora agents' API port (Octavia's `[haproxy_amphora] bind_port`).
    pub agent_port: u16,
    /// The MTU of every interface on the management network (the controller's port, the
    /// amphorae's `eth0`): 1450 leaves room for VXLAN's 50 bytes on a 1500-byte underlay
    /// (a bridge drops frames too big for a port, it neither fragments nor says so).
    pub management_mtu: u32,
    /// Tenant networks (`[[netns.networks]]`): a bridge `rocta-<name>` each with this host's
    /// gateway address (the subnet's first address). Default: `public`, 198.19.0.0/24.
    pub networks: Vec<NetnsNetwork>,
}

/// A compute zone of `[netns]`: where its amphorae run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComputeZone {
    /// The zone's name (an availability zone profile's `compute_zone`).
    pub name: String,
    /// The network namespace standing for its host, as `amphora_host_netns`; empty: this
    /// host.
    #[serde(default)]
    pub host_netns: String,
}

/// A tenant network of `[netns]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetnsNetwork {
    /// 1 to 9 of a-z, 0-9 and `-`.
    pub name: String,
    pub cidr: String,
    /// Its Neutron-style ids (a network and its one subnet).
    #[serde(default)]
    pub network_id: String,
    #[serde(default)]
    pub subnet_id: String,
}

impl Default for Netns {
    fn default() -> Self {
        Netns {
            management_bridge: "rocta-mgmt".into(),
            management_cidr: "198.18.0.0/24".into(),
            management_network_id: "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c60".into(),
            host_address: String::new(),
            amphora_host_netns: String::new(),
            compute_zones: Vec::new(),
            host_port: "rocta-hm0".into(),
            agent_port: 9443,
            management_mtu: 1450,
            // The id of the loopback driver's `public`, so clients keep working.
            networks: vec![NetnsNetwork {
                name: "public".into(),
                cidr: "198.19.0.0/24".into(),
                network_id: "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5a".into(),
                subnet_id: "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b".into(),
            }],
        }
    }
}
