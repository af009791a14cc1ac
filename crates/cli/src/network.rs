//! `rocta network setup` / `rocta network teardown`: the load-balancer management network and
//! the tenant networks on this host (`rocta_drivers::hostnet`), from `[netns]` and `[health_manager]` and the VXLAN
//! flags. Both are idempotent; `--dry-run` prints the `ip`/`nft` commands instead.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::Args;
use rocta_drivers::hostnet::{HostNetworks, Plan, TenantNetwork, ThisHost, Vxlan};

use rocta_config::Config;

use crate::boot::BootError;

#[derive(Args, Clone)]
pub struct NetworkArgs {
    /// TOML configuration file (its `[netns]` and `[health_manager]` sections).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the commands instead of running them.
    #[arg(long)]
    dry_run: bool,
    /// Join the management bridge to other hosts' over VXLAN with this id.
    #[arg(long)]
    vxlan_id: Option<u32>,
    /// This host's underlay address (the VXLAN's source).
    #[arg(long)]
    local: Option<IpAddr>,
    /// Another host's underlay address (repeatable).
    #[arg(long)]
    remote: Vec<IpAddr>,
    /// A multicast group instead of remotes.
    #[arg(long)]
    group: Option<IpAddr>,
    /// The VXLAN's UDP port.
    #[arg(long, default_value_t = 4789)]
    dstport: u16,
    /// The underlay interface.
    #[arg(long)]
    dev: Option<String>,
}

fn usage(msg: impl Into<String>) -> BootError {
    BootError::LoadConfig(msg.into())
}

/// The network the arguments describe; teardown only needs the VXLAN's id.
fn network(a: &NetworkArgs, setup: bool) -> Result<HostNetworks, BootError> {
    let cfg = crate::boot::load_config(&crate::RoleArgs {
        config: a.config.clone(),
        data_dir: PathBuf::from("."),
        api_bind: None,
        drivers: None,
    })?;
    let vxlan = match (a.vxlan_id, a.local) {
        (None, _) if !a.remote.is_empty() || a.group.is_some() => {
            return Err(usage("--remote and --group need --vxlan-id N"))
        }
        (None, _) => None,
        (Some(_), None) if setup => return Err(usage("--vxlan-id needs --local ADDR")),
        (Some(id), local) => Some(Vxlan {
            id,
            local: local.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            remotes: a.remote.clone(),
            group: a.group,
            dstport: a.dstport,
            dev: a.dev.clone(),
        }),
    };
    host_networks(&cfg, vxlan)
}

/// The networks `[netns]` and `[health_manager]` describe on this host.
pub fn host_networks(cfg: &Config, vxlan: Option<Vxlan>) -> Result<HostNetworks, BootError> {
    let n = &cfg.netns;
    let cidr: ipnet::Ipv4Net = n.management_cidr.parse().map_err(|e| {
        usage(format!(
            "[netns] management_cidr {:?}: {e}",
            n.management_cidr
        ))
    })?;
    let host_address = match n.host_address.as_str() {
        "" => cidr
            .hosts()
            .next()
            .ok_or_else(|| usage(format!("[netns] management_cidr {cidr}: no host address")))?,
        a => a
            .parse()
            .ok()
            .filter(|ip| cidr.contains(ip) && *ip != cidr.network() && *ip != cidr.broadcast())
            .ok_or_else(|| {
                usage(format!(
                    "[netns] host_address {a:?}: not an address of management_cidr {cidr}"
                ))
            })?,
    };
    let other_controllers: Vec<Ipv4Addr> = cfg
        .health_manager
        .controller_ip_port_list
        .iter()
        .filter_map(|hp| hp.rsplit_once(':').and_then(|(h, _)| h.parse().ok()))
        .filter(|ip| *ip != host_address)
        .collect();
    let tenants = n
        .networks
        .iter()
        .map(|t| {
            Ok(TenantNetwork {
                name: t.name.clone(),
                cidr: t.cidr.parse().map_err(|e| {
                    usage(format!(
                        "[[netns.networks]] {}: cidr {:?}: {e}",
                        t.name, t.cidr
                    ))
                })?,
            })
        })
        .collect::<Result<Vec<_>, BootError>>()?;
    Ok(HostNetworks {
        bridge: n.management_bridge.clone(),
        cidr,
        host_port: n.host_port.clone(),
        host_address,
        other_controllers,
        agent_port: n.agent_port,
        mtu: n.management_mtu,
        heartbeat_port: cfg.health_manager.bind_port,
        vxlan,
        tenants,
    })
}

/// Builds what is missing of the host networks (`rocta serve` with the netns drivers does
/// this itself at start, idempotently, as `rocta network setup` would).
pub fn ensure(n: &HostNetworks) -> Result<(), BootError> {
    // Roles starting at once on one host (worker and health manager) build them one after
    // the other: the second finds everything in place.
    let lock_path = std::env::temp_dir().join(format!("rocta-network-{}.lock", n.bridge));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| BootError::Preflight(format!("{}: {e}", lock_path.display())))?;
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| BootError::Preflight(format!("{}: {e}", lock_path.display())))?;
    let plan = n
        .setup(&ThisHost)
        .map_err(|e| BootError::Preflight(format!("host networks: {e}")))?;
    plan.apply()
        .map_err(|e| BootError::Preflight(format!("host networks: {e}")))
}

fn carry_out(plan: &Plan, dry_run: bool, what: &str) -> Result<(), BootError> {
    if dry_run {
        for s in &plan.steps {
            println!("{s}");
        }
        return Ok(());
    }
    plan.apply()
        .map_err(|e| BootError::Preflight(e.to_string()))?;
    println!("rocta network {what}: done ({} commands)", plan.steps.len());
    Ok(())
}

pub fn setup(a: &NetworkArgs) -> Result<(), BootError> {
    let n = network(a, true)?;
    let plan = n.setup(&ThisHost).map_err(|e| usage(e.to_string()))?;
    carry_out(&plan, a.dry_run, "setup")
}

pub fn teardown(a: &NetworkArgs) -> Result<(), BootError> {
    let n = network(a, false)?;
    carry_out(&n.teardown(&ThisHost), a.dry_run, "teardown")
}
