//! UDP (and SCTP) listeners in the kernel: the nftables ruleset that forwards a load balancer's
//! UDP listeners to their members. Octavia serves these protocols with keepalived's LVS (IPVS);
//! rocta's kernels have no IPVS, and nftables does the same job (kube-proxy's newest backend
//! made the same move): each listener's first packet of a flow is DNAT'ed to a member chosen by
//! the pool's algorithm, conntrack keeps the flow on that member, and the reply is
//! masqueraded through the amphora (as Octavia's LVS NAT mode with its masquerade rule), so
//! members need no route back to the client. No per-packet user-space work.
//!
//! Two steps, both pure: [`service`] picks from a load balancer's desired state what the
//! amphora forwards (the controller sends it to the agent as JSON), and [`render`] turns it,
//! with the members the agent's monitors find alive, into one `nft -f` file that replaces the
//! load balancer's table in one transaction: flows already tracked keep their member.
//!
//! Algorithms: `ROUND_ROBIN` (`numgen inc`), `SOURCE_IP` (`jhash` of the source address),
//! `SOURCE_IP_PORT` (`jhash` of address and port), each member weighted by repeating it in the
//! map (weights divided by their greatest common divisor); `LEAST_CONNECTIONS` cannot be done
//! without counting connections per member and is refused. `SOURCE_IP` session persistence
//! (LVS's persistence templates) is a map from the source address under
//! `persistence_granularity`'s mask to the member's slot, with `persistence_timeout` as the
//! entries' idle timeout (each new flow of the client refreshes it): the pool's algorithm
//! picks a new client's member, its later flows go to the same one. The map starts empty when
//! the table is replaced (a member added, removed or found dead), as LVS drops the templates
//! of a removed real server. Backup members serve only when no other member is alive; a member
//! with weight 0 takes no new flows.

use std::fmt::Write;

use rocta_model::*;
use serde::{Deserialize, Serialize};

/// What an amphora forwards in the kernel for one load balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpService {
    pub lb_id: Id,
    pub vip: String,
    /// The additional VIPs (of the VIP's address family), forwarded as the VIP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_vips: Vec<String>,
    pub listeners: Vec<UdpListener>,
}

/// An enabled UDP or SCTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpListener {
    pub id: Id,
    pub protocol: ListenerProtocol,
    pub port: u16,
    /// Its default pool when enabled; without one the listener drops what it receives.
    pub pool: Option<UdpPool>,
}

/// An enabled pool of a UDP or SCTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpPool {
    pub id: Id,
    pub algorithm: LbAlgorithm,
    /// `SOURCE_IP` session persistence.
    pub persistence: Option<UdpPersistence>,
    /// The enabled members.
    pub members: Vec<UdpMember>,
    /// Its enabled health monitor, run by the agent; none: every enabled member serves.
    #[serde(default)]
    pub monitor: Option<UdpMonitor>,
}

/// `SOURCE_IP` session persistence of a UDP pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpPersistence {
    /// Seconds a client stays on its member after its last new flow (Octavia's
    /// `persistence_timeout`, default 360).
    pub timeout: i64,
    /// The netmask applied to the source address (`persistence_granularity`; none: the
    /// whole address).
    pub granularity: Option<String>,
}

/// Octavia's default `persistence_timeout` for UDP pools.
pub const DEFAULT_PERSISTENCE_TIMEOUT: i64 = 360;

/// A UDP pool's health monitor (Octavia's UDP-CONNECT, HTTP, TCP and PING for LVS pools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpMonitor {
    pub kind: HealthMonitorType,
    /// Seconds between checks of a member.
    pub delay: i64,
    /// Seconds a check may take.
    pub timeout: i64,
    /// Successes in a row that bring a member up.
    pub rise: i64,
    /// Failures in a row that take a member down.
    pub fall: i64,
    pub http_method: Option<HttpMethod>,
    pub url_path: Option<String>,
    pub expected_codes: Option<String>,
}

/// An enabled member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpMember {
    pub id: Id,
    pub address: String,
    pub port: u16,
    pub weight: u16,
    pub backup: bool,
    /// Where the monitor checks it (`monitor_address` / `monitor_port`; none: its own).
    #[serde(default)]
    pub monitor_address: Option<String>,
    #[serde(default)]
    pub monitor_port: Option<u16>,
}

/// Why a service cannot be rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum NftError {
    /// The pool's algorithm needs state nftables does not keep.
    Unsupported(String),
    /// An address that is not one of the VIP's family.
    BadAddress(String),
}

impl std::fmt::Display for NftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NftError::Unsupported(m) | NftError::BadAddress(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for NftError {}

/// The named counters of each listener (`<kind>_<listener id without dashes>`): flows
/// forwarded, bytes received from clients, bytes sent back to them.
pub const COUNTERS: [&str; 3] = ["flows", "rx", "tx"];

/// The nftables table of load balancer `lb` (in the amphora's namespace).
pub fn table_name(lb: Id) -> String {
    format!("rocta_{}", lb.simple())
}

/// The UDP and SCTP part of a load balancer's desired state: its enabled listeners with their
/// enabled default pools and members. `None` when there is nothing to forward (no such
/// listener, or the load balancer is disabled).
pub fn service(t: &LbTree) -> Option<UdpService> {
    let lb = t.loadbalancer.as_ref().filter(|lb| lb.admin_state_up)?;
    let vip = lb.vip_address.clone()?;
    let listeners: Vec<UdpListener> = t
        .listeners
        .iter()
        .filter(|l| l.admin_state_up && l.protocol.is_lvs())
        .map(|l| UdpListener {
            id: l.id,
            protocol: l.protocol,
            port: l.protocol_port,
            pool: l
                .default_pool_id
                .and_then(|p| t.pools.iter().find(|x| x.id == p && x.admin_state_up))
                .map(|p| UdpPool {
                    id: p.id,
                    algorithm: p.lb_algorithm,
                    persistence: p
                        .session_persistence
                        .as_ref()
                        .filter(|s| s.kind == PersistenceType::SourceIp)
                        .map(|s| UdpPersistence {
                            timeout: s
                                .persistence_timeout
                                .filter(|t| *t > 0)
                                .unwrap_or(DEFAULT_PERSISTENCE_TIMEOUT),
                            granularity: s.persistence_granularity.clone(),
                        }),
                    members: t
                        .members
                        .iter()
                        .filter(|m| m.pool_id == p.id && m.admin_state_up)
                        .map(|m| UdpMember {
                            id: m.id,
                            address: m.address.clone(),
                            port: m.protocol_port,
                            weight: m.weight,
                            backup: m.backup,
                            monitor_address: m.monitor_address.clone(),
                            monitor_port: m.monitor_port,
                        })
                        .collect(),
                    monitor: t
                        .health_monitors
                        .iter()
                        .find(|h| h.pool_id == p.id && h.admin_state_up)
                        .map(|h| UdpMonitor {
                            kind: h.kind,
                            delay: h.delay,
                            timeout: h.timeout,
                            rise: h.max_retries,
                            fall: h.max_retries_down,
                            http_method: h.http_method,
                            url_path: h.url_path.clone(),
                            expected_codes: h.expected_codes.clone(),
                        }),
                }),
        })
        .collect();
    (!listeners.is_empty()).then_some(UdpService {
        lb_id: lb.id,
        vip,
        additional_vips: lb
            .additional_vips
            .iter()
            .filter_map(|a| a.ip_address.clone())
            .collect(),
        listeners,
    })
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The members that take new flows: the live primaries with a weight, else the live backups.
fn serving<'a>(p: &'a UdpPool, up: &dyn Fn(Id) -> bool) -> Vec<&'a UdpMember> {
    let live = |backup: bool| -> Vec<&UdpMember> {
        p.members
            .iter()
            .filter(|m| m.backup == backup && m.weight > 0 && up(m.id))
            .collect()
    };
    let primaries = live(false);
    if primaries.is_empty() {
        live(true)
    } else {
        primaries
    }
}

/// `address . port` as nftables writes a concatenation (IPv6 addresses in brackets are not
/// needed there).
fn target(m: &UdpMember) -> String {
    format!("{} . {}", m.address, m.port)
}

/// What a listener's chain does: its statements, and the persistence map it needs.
struct Dispatch {
    lines: Vec<String>,
    /// The declaration of the listener's persistence map, when its pool has one.
    map: Option<String>,
}

impl Dispatch {
    fn one(line: String) -> Dispatch {
        Dispatch {
            lines: vec![line],
            map: None,
        }
    }
}

/// The statements of a listener's chain that pick a member of its pool.
fn dispatch(l: &UdpListener, family: &str, up: &dyn Fn(Id) -> bool) -> Result<Dispatch, NftError> {
    let Some(pool) = &l.pool else {
        return Ok(Dispatch::one("drop".into()));
    };
    if pool.algorithm == LbAlgorithm::LeastConnections {
        return Err(NftError::Unsupported(format!(
            "pool {}: LEAST_CONNECTIONS is not supported for {} pools: rocta forwards them in \
             the kernel with nftables, which keeps no connection count per member; use \
             ROUND_ROBIN, SOURCE_IP or SOURCE_IP_PORT.",
            pool.id,
            l.protocol.as_str()
        )));
    }
    let members = serving(pool, up);
    for m in &members {
        let v6 = m.address.contains(':');
        if v6 != (family == "ip6") || m.address.parse::<std::net::IpAddr>().is_err() {
            return Err(NftError::BadAddress(format!(
                "member {}: address {} is not an {} address like the VIP's",
                m.id,
                m.address,
                if family == "ip6" { "IPv6" } else { "IPv4" }
            )));
        }
    }
    // nftables maps ports only after a transport protocol match.
    let proto = l.protocol.as_str().to_ascii_lowercase();
    match members.as_slice() {
        [] => return Ok(Dispatch::one("drop".into())),
        [one] => {
            let addr = if family == "ip6" {
                format!("[{}]", one.address)
            } else {
                one.address.clone()
            };
            return Ok(Dispatch::one(format!(
                "meta l4proto {proto} dnat to {addr}:{}",
                one.port
            )));
        }
        _ => {}
    }
    let g = members
        .iter()
        .fold(0u32, |g, m| gcd(g, u32::from(m.weight)))
        .max(1);
    let mut slots: Vec<&UdpMember> = Vec::new();
    for m in &members {
        slots.extend(std::iter::repeat_n(*m, (u32::from(m.weight) / g) as usize));
    }
    let saddr = format!("{family} saddr");
    let pick = match pool.algorithm {
        LbAlgorithm::SourceIp => format!("jhash {saddr}"),
        LbAlgorithm::SourceIpPort => format!("jhash {saddr} . {proto} sport"),
        _ => "numgen inc".into(),
    };
    let Some(p) = &pool.persistence else {
        let map: Vec<String> = slots
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{i} : {}", target(m)))
            .collect();
        return Ok(Dispatch::one(format!(
            "meta l4proto {proto} dnat to {pick} mod {} map {{ {} }}",
            slots.len(),
            map.join(", ")
        )));
    };
    // Persistence: a known client's slot comes from the map (a miss leaves the mark 0), a new
    // client's from the algorithm; the map learns or refreshes it; the slot picks the member.
    let key = match &p.granularity {
        Some(mask) => format!("{saddr} & {mask}"),
        None => saddr,
    };
    let name = format!("sticky_{}", l.id.simple());
    let addr_type = if family == "ip6" {
        "ipv6_addr"
    } else {
        "ipv4_addr"
    };
    let map: Vec<String> = slots
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{} : {}", i + 1, target(m)))
        .collect();
    Ok(Dispatch {
        lines: vec![
            format!("meta mark set {key} map @{name}"),
            format!("meta mark 0 meta mark set {pick} mod {} offset 1", slots.len()),
            format!("update @{name} {{ {key} : meta mark }}"),
            format!(
                "meta l4proto {proto} dnat to meta mark map {{ {} }}",
                map.join(", ")
            ),
        ],
        map: Some(format!(
            "\tmap {name} {{\n\t\ttype {addr_type} : mark\n\t\tflags dynamic,timeout\n\t\ttimeout {}s\n\t}}",
            p.timeout.max(1)
        )),
    })
}

/// The `nft -f` file that makes the load balancer's table exactly `s` (created if missing,
/// replaced whole in one transaction), with `up` saying which members the monitors find
/// alive.
pub fn render(s: &UdpService, up: &dyn Fn(Id) -> bool) -> Result<String, NftError> {
    let v6 = s.vip.contains(':');
    let family = if v6 { "ip6" } else { "ip" };
    for a in std::iter::once(&s.vip).chain(&s.additional_vips) {
        match a.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_ipv6() == v6 => {}
            Ok(_) => {
                return Err(NftError::BadAddress(format!(
                    "VIP {a} is not of the IP version of {}",
                    s.vip
                )))
            }
            Err(_) => return Err(NftError::BadAddress(format!("VIP {a} is not an address"))),
        }
    }
    // One address, or an anonymous set of them.
    let daddr = if s.additional_vips.is_empty() {
        s.vip.clone()
    } else {
        format!("{{ {}, {} }}", s.vip, s.additional_vips.join(", "))
    };
    let table = table_name(s.lb_id);
    let mut c = String::new();
    let ids: Vec<String> = s
        .listeners
        .iter()
        .map(|l| l.id.simple().to_string())
        .collect();
    let dispatches = s
        .listeners
        .iter()
        .map(|l| dispatch(l, family, up))
        .collect::<Result<Vec<_>, _>>()?;
    let _ = writeln!(
        c,
        "# Rendered by rocta for load balancer {}; do not edit.",
        s.lb_id
    );
    // Declaring the table first makes the delete succeed when it does not exist yet; the
    // three commands are one transaction.
    let _ = writeln!(c, "table {family} {table}\ndelete table {family} {table}");
    let _ = writeln!(c, "table {family} {table} {{");
    // Per listener: flows (the first packet of each, which the nat chain sees), and bytes in
    // and out of every packet of its flows (the forward chain sees them all).
    for id in &ids {
        for k in COUNTERS {
            let _ = writeln!(c, "\tcounter {k}_{id} {{\n\t}}");
        }
    }
    for m in dispatches.iter().filter_map(|d| d.map.as_ref()) {
        let _ = writeln!(c, "{m}");
    }
    c.push_str(
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n",
    );
    for (l, id) in s.listeners.iter().zip(&ids) {
        let proto = l.protocol.as_str().to_ascii_lowercase();
        let _ = writeln!(
            c,
            "\t\t{family} daddr {daddr} {proto} dport {} counter name flows_{id} jump listener_{id}",
            l.port,
        );
    }
    c.push_str("\t}\n");
    c.push_str(
        "\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
    );
    for (l, id) in s.listeners.iter().zip(&ids) {
        let proto = l.protocol.as_str().to_ascii_lowercase();
        for (dir, k) in [("original", "rx"), ("reply", "tx")] {
            let _ = writeln!(
                c,
                "\t\tct original {family} daddr {daddr} ct original protocol {proto} ct original proto-dst {} ct direction {dir} counter name {k}_{id}",
                l.port,
            );
        }
    }
    c.push_str("\t}\n");
    for (id, d) in ids.iter().zip(&dispatches) {
        let _ = writeln!(
            c,
            "\n\tchain listener_{id} {{\n\t\t{}\n\t}}",
            d.lines.join("\n\t\t")
        );
    }
    let _ = writeln!(
        c,
        "\n\tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tct status dnat ct original {family} daddr {daddr} masquerade\n\t}}\n}}"
    );
    Ok(c)
}

/// The `nft -f` file that removes the load balancer's tables (whether or not they exist).
pub fn render_delete(lb: Id) -> String {
    let table = table_name(lb);
    ["ip", "ip6"]
        .map(|f| format!("table {f} {table}\ndelete table {f} {table}\n"))
        .concat()
}

#[cfg(test)]
mod tests;
