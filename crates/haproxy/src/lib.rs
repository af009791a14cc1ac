//! Renders the desired state of one load balancer (`LbTree`) into one HAProxy configuration, the
//! way Octavia's amphora templates map API fields to directives (reference/octavia.md §6), with
//! rocta's own choices where Octavia relies on things an amphora on loopback does not have:
//! `allowed_cidrs` become `tcp-request connection reject` rules (Octavia uses security groups),
//! L7 policies keep their position order across action types, and TLS-HELLO monitors do a TLS
//! handshake check. Pure: no I/O, golden-tested.
//!
//! Layout: `render` (global, defaults, frontends, backends), `l7` (ACLs and policy actions),
//! `files` (names of the certificate files the agent stores beside the config).

pub mod keepalived;
mod l7;
pub mod nft;
pub mod promex;
pub mod runtime;
pub mod stats;

use std::fmt::Write;

use rocta_model::*;

/// Where the agent keeps things and the limits it derived.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The amphora the configuration is for (names its stats socket).
    pub amphora_id: String,
    /// Directory of the stats socket and the server-state file.
    pub run_dir: String,
    /// Directory of certificate files (see `cert_file_name`, `crt_list_name`).
    pub cert_dir: String,
    /// Upper bound of HAProxy's global `maxconn`, derived from the file-descriptor limit.
    pub maxconn_cap: i64,
    /// Connection limit used for listeners whose limit is -1.
    pub default_connection_limit: i64,
    /// Per-request logging (Octavia's `connection_logging`): `None` off; `Some("ring")` into an
    /// in-memory ring buffer of HAProxy (no syscall per request; the agent drains it); any
    /// other value is a syslog target (`/path/to/socket`, `udp@host:port`).
    pub log_target: Option<String>,
    /// Syslog facilities (`localN`) of the per-request logs and of HAProxy's administrative
    /// messages (notice and above), Octavia's `user_log_facility` and
    /// `administrative_log_facility`; the agent ships each to its own targets.
    pub log_facilities: (u8, u8),
    /// The amphorae of an ACTIVE_STANDBY pair (`peer_name`, `ip:port`), this one included:
    /// a `peers` section, and every stick table shared through it. Empty: SINGLE.
    pub peers: Vec<(String, String)>,
}

/// The port HAProxy's peers speak on (Octavia's `HAPROXY_BASE_PEER_PORT`).
pub const PEER_PORT: u16 = 1025;

/// An amphora's name in a `peers` section (and HAProxy's `-L`): its id without dashes, as
/// Octavia's.
pub fn peer_name(amphora_id: &str) -> String {
    amphora_id.replace('-', "")
}

/// The `peers` section of load balancer `lb`.
fn peers_section(lb: Id) -> String {
    format!("{}_peers", lb.simple())
}

/// The script a PING health monitor runs (HAProxy's external check), kept by the agent in the
/// load balancer's run directory.
pub const PING_WRAPPER: &str = "ping-wrapper.sh";

/// The text of [`PING_WRAPPER`]: one ICMP echo to the member (Octavia's `ping-wrapper.sh`).
pub const PING_WRAPPER_SCRIPT: &str = r#"#!/bin/sh
# Written by the rocta agent: HAProxy's external check for PING health monitors.
case "$HAPROXY_SERVER_ADDR" in
  *:*) exec ping -6 -q -n -w 1 -c 1 "$HAPROXY_SERVER_ADDR" >/dev/null 2>&1 ;;
  *) exec ping -q -n -w 1 -c 1 "$HAPROXY_SERVER_ADDR" >/dev/null 2>&1 ;;
esac
"#;

/// The in-memory ring HAProxy writes a load balancer's per-request logs to (drained by the agent).
pub fn ring_name(lb: Id) -> String {
    format!("rocta-{lb}")
}

/// The stats socket of a load balancer on an amphora: an abstract unix socket (no path-length
/// limit from deep data directories, nothing left on disk), unique per amphora and load
/// balancer so a failover's two amphorae on one host never collide.
pub fn stats_socket_name(amphora_id: &str, lb: Id) -> String {
    format!("rocta-{amphora_id}-{lb}")
}

/// Where a load balancer's HAProxy serves its own Prometheus exporter (Octavia:
/// 127.0.0.1:9101), only for the amphora's agent to read: an abstract unix socket, per amphora
/// and load balancer as the stats socket.
pub fn exporter_socket_name(amphora_id: &str, lb: Id) -> String {
    format!("rocta-promex-{amphora_id}-{lb}")
}

/// Where the amphora's agent serves the exporter's metrics renamed as Octavia's
/// (`octavia_*`), which a PROMETHEUS listener forwards to (Octavia: 127.0.0.1:9102).
pub fn metrics_proxy_socket_name(amphora_id: &str) -> String {
    format!("rocta-promproxy-{amphora_id}")
}

/// The internal exporter and the backend a PROMETHEUS listener uses, as Octavia's template
/// names them (its metrics proxy leaves out every line naming `prometheus-exporter`).
fn prometheus_sections(c: &mut String, lb: Id, o: &RenderOptions) {
    let _ = write!(
        c,
        "
frontend prometheus-exporter-internal-endpoint
    bind abns@{}
    mode http
    no log
    http-request use-service prometheus-exporter if {{ path /metrics }}
    http-request reject
    timeout http-request 5s
    timeout client 5s

backend prometheus-exporter-internal
    mode http
    no log
    balance first
    timeout connect 5s
    timeout server 5s
    server prometheus-internal abns@{}
",
        exporter_socket_name(&o.amphora_id, lb),
        metrics_proxy_socket_name(&o.amphora_id)
    );
}

/// What the agent writes as server-state file before HAProxy's first start (HAProxy warns on a
/// missing or version-less file).
pub const EMPTY_SERVER_STATE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n";

/// The file a TLS container reference is stored under (FNV-1a of the reference).
pub fn cert_file_name(reference: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in reference.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}.pem")
}

/// The crt-list file of a TERMINATED_HTTPS listener (default certificate first, then SNI).
pub fn crt_list_name(listener: Id) -> String {
    format!("{listener}.crtlist")
}

/// The lines of a listener's crt-list file.
pub fn crt_list(l: &Listener, cert_dir: &str) -> String {
    let mut out = String::new();
    for r in l
        .default_tls_container_ref
        .iter()
        .chain(l.sni_container_refs.iter())
    {
        let _ = writeln!(out, "{cert_dir}/{}", cert_file_name(r));
    }
    out
}

fn addr(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn conn_limit(l: &Listener, o: &RenderOptions) -> i64 {
    let limit = if l.connection_limit < 0 {
        o.default_connection_limit
    } else {
        l.connection_limit
    };
    limit.min(o.maxconn_cap).max(1)
}

/// The HAProxy mode of a listener.
fn mode(p: ListenerProtocol) -> &'static str {
    match p {
        ListenerProtocol::Http
        | ListenerProtocol::TerminatedHttps
        | ListenerProtocol::Prometheus => "http",
        _ => "tcp",
    }
}

/// TLS versions Octavia renders as `no-…` options when they are not allowed.
const TLS_OPTS: [(&str, &str); 5] = [
    ("SSLv3", "no-sslv3"),
    ("TLSv1", "no-tlsv10"),
    ("TLSv1.1", "no-tlsv11"),
    ("TLSv1.2", "no-tlsv12"),
    ("TLSv1.3", "no-tlsv13"),
];

fn tls_bind_opts(
    ciphers: &Option<String>,
    versions: &Option<Vec<String>>,
    alpn: &Option<Vec<String>>,
) -> String {
    let mut s = String::new();
    if let Some(c) = ciphers {
        let _ = write!(s, " ciphers {c}");
    }
    if let Some(v) = versions {
        for (name, opt) in TLS_OPTS {
            if !v.iter().any(|x| x == name) {
                let _ = write!(s, " {opt}");
            }
        }
    }
    if let Some(a) = alpn.as_ref().filter(|a| !a.is_empty()) {
        let _ = write!(s, " alpn {}", a.join(","));
    }
    s
}

/// Renders the configuration. Listeners that are disabled, or UDP/SCTP (served by LVS, not
/// HAProxy), are left out; a tree without listeners renders only the global sections.
pub fn render(t: &LbTree, o: &RenderOptions) -> String {
    let Some(lb) = &t.loadbalancer else {
        return String::new();
    };
    let vip = lb.vip_address.clone().unwrap_or_else(|| "0.0.0.0".into());
    let listeners: Vec<&Listener> = t
        .listeners
        .iter()
        .filter(|l| l.admin_state_up && lb.admin_state_up && !l.protocol.is_lvs())
        .collect();
    let total: i64 = listeners.iter().map(|l| conn_limit(l, o)).sum();
    let maxconn = total.clamp(1, o.maxconn_cap.max(1));
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Rendered by rocta for load balancer {}; do not edit.",
        lb.id
    );
    c.push_str("global\n");
    let _ = writeln!(
        c,
        "    stats socket abns@{} mode 0600 level admin expose-fd listeners",
        stats_socket_name(&o.amphora_id, lb.id)
    );
    let _ = writeln!(c, "    server-state-file {}/{}.state", o.run_dir, lb.id);
    let _ = writeln!(c, "    maxconn {maxconn}");
    let ring = ring_name(lb.id);
    let target = match o.log_target.as_deref() {
        Some("ring") => Some(format!("ring@{ring}")),
        other => other.map(str::to_string),
    };
    if let Some(target) = target {
        let (user, admin) = o.log_facilities;
        let _ = writeln!(c, "    log {target} local{user}");
        let _ = writeln!(c, "    log {target} local{admin} notice");
    }
    let tls = listeners
        .iter()
        .any(|l| l.protocol == ListenerProtocol::TerminatedHttps);
    if tls {
        c.push_str("    tune.ssl.default-dh-param 2048\n");
    }
    let ping = t
        .health_monitors
        .iter()
        .any(|h| h.admin_state_up && h.kind == HealthMonitorType::Ping);
    if ping {
        // As Octavia: PING monitors run an external check, which HAProxy ≥ 2.2 only forks with
        // insecure-fork-wanted.
        c.push_str(
            "    external-check
    insecure-fork-wanted
",
        );
    }
    if o.log_target.as_deref() == Some("ring") {
        let _ = writeln!(
            c,
            "\nring {ring}\n    format rfc5424\n    maxlen 1200\n    size 4194304"
        );
    }
    if !o.peers.is_empty() {
        let _ = writeln!(c, "\npeers {}", peers_section(lb.id));
        for (name, addr) in &o.peers {
            let _ = writeln!(c, "    peer {name} {addr}");
        }
    }
    c.push_str("\ndefaults\n");
    c.push_str(if o.log_target.is_some() {
        "    log global\n"
    } else {
        "    no log\n"
    });
    c.push_str("    retries 3\n    option redispatch\n    option splice-request\n    option splice-response\n    option http-keep-alive\n");
    if listeners
        .iter()
        .any(|l| l.protocol == ListenerProtocol::Prometheus)
    {
        prometheus_sections(&mut c, lb.id, o);
    }
    for l in &listeners {
        frontend(&mut c, t, lb, l, &vip, o);
        for pool in pools_of(t, l) {
            backend(&mut c, t, l, pool, o);
        }
    }
    c
}

/// The enabled pools a listener uses: its default pool, then L7 redirect pools.
fn pools_of<'a>(t: &'a LbTree, l: &Listener) -> Vec<&'a Pool> {
    let mut ids: Vec<Id> = l.default_pool_id.into_iter().collect();
    for p in l7::policies(t, l) {
        if let Some(id) = p.redirect_pool_id {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids.iter()
        .filter_map(|id| t.pools.iter().find(|p| p.id == *id && p.admin_state_up))
        .collect()
}

fn backend_name(pool: Id, listener: Id) -> String {
    format!("{pool}:{listener}")
}

fn frontend(
    c: &mut String,
    t: &LbTree,
    lb: &LoadBalancer,
    l: &Listener,
    vip: &str,
    o: &RenderOptions,
) {
    let _ = writeln!(c, "\nfrontend {}", l.id);
    let _ = writeln!(c, "    maxconn {}", conn_limit(l, o));
    let mut bind = String::new();
    if l.protocol == ListenerProtocol::TerminatedHttps {
        let _ = write!(bind, " ssl crt-list {}/{}", o.cert_dir, crt_list_name(l.id));
        if let Some(ca) = &l.client_ca_tls_container_ref {
            let verify = match l.client_authentication {
                ClientAuthentication::Mandatory => "required",
                ClientAuthentication::Optional => "optional",
                ClientAuthentication::None => "none",
            };
            let _ = write!(
                bind,
                " ca-file {}/{} verify {verify}",
                o.cert_dir,
                cert_file_name(ca)
            );
            if let Some(crl) = &l.client_crl_container_ref {
                let _ = write!(bind, " crl-file {}/{}", o.cert_dir, cert_file_name(crl));
            }
        }
        bind.push_str(&tls_bind_opts(
            &l.tls_ciphers,
            &l.tls_versions,
            &l.alpn_protocols,
        ));
    }
    // The VIP, then each additional VIP (Octavia's `bind_macro` for each).
    let additional = lb
        .additional_vips
        .iter()
        .filter_map(|a| a.ip_address.as_deref());
    for a in std::iter::once(vip).chain(additional) {
        let _ = writeln!(c, "    bind {}{bind}", addr(a, l.protocol_port));
    }
    let _ = writeln!(c, "    mode {}", mode(l.protocol));
    if let Some(cidrs) = l.allowed_cidrs.as_ref().filter(|v| !v.is_empty()) {
        let _ = writeln!(
            c,
            "    tcp-request connection reject if !{{ src {} }}",
            cidrs.join(" ")
        );
    }
    if let (Some(age), ListenerProtocol::TerminatedHttps) = (l.hsts_max_age, l.protocol) {
        let mut v = format!("max-age={age}");
        if l.hsts_include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if l.hsts_preload {
            v.push_str("; preload");
        }
        let _ = writeln!(
            c,
            "    http-response set-header Strict-Transport-Security \"{v};\""
        );
    }
    if mode(l.protocol) == "http" {
        // Set on the old worker by the agent just before a reload (see the agent's
        // `prepare_reload`): keep-alive clients reconnect instead of racing the close of their
        // idle connection.
        c.push_str("    http-after-response set-header Connection close if { var(proc.rocta_drain) -m found }\n");
    }
    if l.protocol.is_http() {
        l7::render(c, t, l, |pool| {
            t.pools
                .iter()
                .any(|p| p.id == pool && p.admin_state_up)
                .then(|| backend_name(pool, l.id))
        });
    }
    if let Some(p) = l
        .default_pool_id
        .filter(|p| t.pools.iter().any(|x| x.id == *p && x.admin_state_up))
    {
        let _ = writeln!(c, "    default_backend {}", backend_name(p, l.id));
    }
    if l.protocol == ListenerProtocol::Prometheus {
        c.push_str("    default_backend prometheus-exporter-internal\n");
    }
    let _ = writeln!(c, "    timeout client {}", l.timeout_client_data);
    if o.log_target.is_some() {
        // Octavia's default `user_log_format`; request fields are `-` for TCP listeners.
        let req = if mode(l.protocol) == "http" {
            "%{+Q}r %ST"
        } else {
            "- -"
        };
        let _ = writeln!(
            c,
            "    log-format \"{} {} %f %ci %cp %t {req} %B %U %[ssl_c_verify] %{{+Q}}[ssl_c_s_dn] %b %s %Tt %tsc\"",
            lb.project_id, lb.id
        );
    }
    if l.timeout_tcp_inspect > 0 {
        let _ = writeln!(c, "    tcp-request inspect-delay {}", l.timeout_tcp_inspect);
    }
}

fn expected_codes(codes: &str) -> String {
    if let Some((a, b)) = codes.split_once('-') {
        if let (Ok(a), Ok(b)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
            return (a..=b).map(|c| c.to_string()).collect::<Vec<_>>().join("|");
        }
    }
    codes
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("|")
}

fn backend(c: &mut String, t: &LbTree, l: &Listener, pool: &Pool, o: &RenderOptions) {
    let _ = writeln!(c, "\nbackend {}", backend_name(pool.id, l.id));
    // Stick tables are shared with the other amphora of an ACTIVE_STANDBY pair.
    let peers = match &t.loadbalancer {
        Some(lb) if !o.peers.is_empty() => format!(" peers {}", peers_section(lb.id)),
        _ => String::new(),
    };
    let pmode = match pool.protocol {
        PoolProtocol::Http => "http",
        PoolProtocol::Proxy | PoolProtocol::ProxyV2 => mode(l.protocol),
        _ => "tcp",
    };
    let _ = writeln!(c, "    mode {pmode}");
    if pmode == "http" {
        c.push_str("    http-reuse safe\n");
    }
    let balance = match pool.lb_algorithm {
        LbAlgorithm::LeastConnections => "leastconn",
        LbAlgorithm::SourceIp => "source",
        // HAProxy ≥ 2.6 hashes any sample: the client's address and port together.
        LbAlgorithm::SourceIpPort => "hash src,concat(:,txn.rocta_src_port)",
        LbAlgorithm::RoundRobin => "roundrobin",
    };
    if pool.lb_algorithm == LbAlgorithm::SourceIpPort {
        c.push_str("    tcp-request content set-var(txn.rocta_src_port) src_port\n");
    }
    let _ = writeln!(c, "    balance {balance}");
    let mut cookie = false;
    if let Some(sp) = &pool.session_persistence {
        match sp.kind {
            PersistenceType::SourceIp => {
                let _ = writeln!(c, "    stick-table type ipv6 size 10k{peers}");
                c.push_str("    stick on src\n");
            }
            PersistenceType::AppCookie if pmode == "http" => {
                let name = sp.cookie_name.clone().unwrap_or_default();
                let _ = writeln!(c, "    stick-table type string len 64 size 10k{peers}");
                let _ = writeln!(c, "    stick store-response res.cook({name})");
                let _ = writeln!(c, "    stick match req.cook({name})");
            }
            PersistenceType::HttpCookie if pmode == "http" => {
                c.push_str("    cookie SRV insert indirect nocache\n");
                cookie = true;
            }
            _ => {}
        }
    }
    let hm = t
        .health_monitors
        .iter()
        .find(|h| h.pool_id == pool.id && h.admin_state_up);
    if let Some(h) = hm {
        c.push_str("    load-server-state-from-file global\n");
        let _ = writeln!(c, "    timeout check {}s", h.timeout);
        if h.kind.is_http() {
            let method = h.http_method.map(|m| m.as_str()).unwrap_or("GET");
            let url = h.url_path.clone().unwrap_or_else(|| "/".into());
            match (h.http_version, &h.domain_name) {
                (Some(v), Some(d)) if v > 1.0 => {
                    let _ = writeln!(c, "    option httpchk");
                    let _ = writeln!(
                        c,
                        "    http-check send meth {method} uri {url} ver HTTP/1.1 hdr Host {d}"
                    );
                }
                (Some(v), _) => {
                    let _ = writeln!(c, "    option httpchk");
                    let _ = writeln!(
                        c,
                        "    http-check send meth {method} uri {url} ver HTTP/{v:.1}"
                    );
                }
                (None, _) => {
                    let _ = writeln!(c, "    option httpchk {method} {url}");
                }
            }
            let codes = expected_codes(h.expected_codes.as_deref().unwrap_or("200"));
            let _ = writeln!(c, "    http-check expect rstatus {codes}");
        }
        if h.kind == HealthMonitorType::Ping {
            c.push_str(
                "    option external-check
",
            );
            let _ = writeln!(
                c,
                "    external-check path \"/usr/bin:/bin\"\n    external-check command {}/{PING_WRAPPER}",
                o.run_dir
            );
        }
    }
    if pmode == "http" && l.protocol.is_http() {
        let hdr = |k: &str| {
            l.insert_headers
                .get(k)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        if hdr("X-Forwarded-For") {
            c.push_str("    option forwardfor\n");
        }
        if hdr("X-Forwarded-Port") {
            c.push_str("    http-request set-header X-Forwarded-Port %[dst_port]\n");
        }
        if hdr("X-Forwarded-Proto") {
            let proto = if l.protocol == ListenerProtocol::TerminatedHttps {
                "https"
            } else {
                "http"
            };
            let _ = writeln!(c, "    http-request set-header X-Forwarded-Proto {proto}");
        }
        if l.protocol == ListenerProtocol::TerminatedHttps {
            for (k, v) in [
                ("X-SSL-Client-Verify", "%[ssl_c_verify]"),
                ("X-SSL-Client-Has-Cert", "%[ssl_c_used]"),
                ("X-SSL-Client-DN", "%{+Q}[ssl_c_s_dn]"),
                ("X-SSL-Client-CN", "%{+Q}[ssl_c_s_dn(cn)]"),
                ("X-SSL-Issuer", "%{+Q}[ssl_c_i_dn]"),
                ("X-SSL-Client-SHA1", "%{+Q}[ssl_c_sha1,hex]"),
                ("X-SSL-Client-Not-Before", "%{+Q}[ssl_c_notbefore]"),
                ("X-SSL-Client-Not-After", "%{+Q}[ssl_c_notafter]"),
            ] {
                if hdr(k) {
                    let _ = writeln!(c, "    http-request set-header {k} {v}");
                }
            }
        }
    }
    let _ = writeln!(c, "    fullconn {}", conn_limit(l, o));
    c.push_str("    option allbackups\n");
    let _ = writeln!(c, "    timeout connect {}", l.timeout_member_connect);
    let _ = writeln!(c, "    timeout server {}", l.timeout_member_data);
    for m in t.members.iter().filter(|m| m.pool_id == pool.id) {
        let mut s = format!(
            "    server {} {} weight {}",
            m.id,
            addr(&m.address, m.protocol_port),
            m.weight
        );
        if let Some(h) = hm {
            let _ = write!(
                s,
                " check inter {}s fall {} rise {}",
                h.delay.max(1),
                h.max_retries_down,
                h.max_retries
            );
            if let Some(a) = &m.monitor_address {
                let _ = write!(s, " addr {a}");
            }
            if let Some(p) = m.monitor_port {
                let _ = write!(s, " port {p}");
            }
            if matches!(
                h.kind,
                HealthMonitorType::Https | HealthMonitorType::TlsHello
            ) && !pool.tls_enabled
            {
                s.push_str(" check-ssl verify none");
            }
        }
        if cookie {
            let _ = write!(s, " cookie {}", m.id);
        }
        match pool.protocol {
            PoolProtocol::Proxy => s.push_str(" send-proxy"),
            PoolProtocol::ProxyV2 => s.push_str(" send-proxy-v2"),
            _ => {}
        }
        if m.backup {
            s.push_str(" backup");
        }
        if !m.admin_state_up {
            s.push_str(" disabled");
        }
        if pool.tls_enabled {
            match &pool.ca_tls_container_ref {
                Some(ca) => {
                    let _ = write!(
                        s,
                        " ssl ca-file {}/{} verify required",
                        o.cert_dir,
                        cert_file_name(ca)
                    );
                    if let Some(crl) = &pool.crl_container_ref {
                        let _ = write!(s, " crl-file {}/{}", o.cert_dir, cert_file_name(crl));
                    }
                }
                None => s.push_str(" ssl verify none"),
            }
            if let Some(crt) = &pool.tls_container_ref {
                let _ = write!(s, " crt {}/{}", o.cert_dir, cert_file_name(crt));
            }
            s.push_str(" sni ssl_fc_sni");
            s.push_str(&tls_bind_opts(
                &pool.tls_ciphers,
                &pool.tls_versions,
                &pool.alpn_protocols,
            ));
        }
        c.push_str(&s);
        c.push('\n');
    }
}

#[cfg(test)]
mod tests;
