//! Octavia's `amphora-agent.conf`: the agent configuration a controller burns into an
//! amphora's config drive (`/etc/octavia/amphora-agent.conf`) and sends with `PUT /1.0/config`,
//! in the layout of Octavia's `amphora_agent_conf.template` (oslo.config INI: `[DEFAULT]`,
//! `[haproxy_amphora]`, `[health_manager]`, `[amphora_agent]`, `[controller_worker]`).
//!
//! rocta's agent reads it (as Octavia's does), and the OpenStack compute driver renders it. Log
//! shipping, which Octavia configures with rsyslog, is rocta's agent's own: its options keep
//! their Octavia names (`[amphora_agent] admin_log_targets`, ...) as extra keys that Octavia's
//! agent ignores.

use crate::logs::LogShipping;

/// Where Octavia's amphora image keeps the agent's files (the config drive's paths).
pub const CONFIG_PATH: &str = "/etc/octavia/amphora-agent.conf";
pub const SERVER_CERT_PATH: &str = "/etc/octavia/certs/server.pem";
pub const CLIENT_CA_PATH: &str = "/etc/octavia/certs/client_ca.pem";

/// The options of `amphora-agent.conf` an agent acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConf {
    pub amphora_id: String,
    /// `[haproxy_amphora] bind_host` / `bind_port`: where the agent API listens.
    pub bind_host: String,
    pub bind_port: u16,
    /// `[haproxy_amphora] base_path`: the load balancers' configurations and sockets.
    pub base_path: String,
    /// `[haproxy_amphora] base_cert_dir`: their certificates.
    pub base_cert_dir: String,
    pub haproxy_cmd: String,
    /// `[amphora_agent] agent_server_cert`: the agent's certificate and key (PEM).
    pub agent_server_cert: String,
    /// `[amphora_agent] agent_server_ca`: the CA of the controllers' client certificates.
    pub agent_server_ca: String,
    pub agent_request_read_timeout: u64,
    /// `[health_manager]`: where heartbeats go (`ip:port`), how often, signed with what.
    pub controller_ip_port_list: Vec<String>,
    pub heartbeat_interval: f64,
    pub heartbeat_key: String,
    /// `[controller_worker] loadbalancer_topology`.
    pub topology: String,
    pub debug: bool,
    /// `[amphora_agent]`'s log offloading options and `[haproxy_amphora]`'s facilities.
    pub logs: LogShipping,
}

impl Default for AgentConf {
    /// Octavia's defaults.
    fn default() -> Self {
        AgentConf {
            amphora_id: String::new(),
            bind_host: "::".into(),
            bind_port: 9443,
            base_path: "/var/lib/octavia".into(),
            base_cert_dir: "/var/lib/octavia/certs".into(),
            haproxy_cmd: "/usr/sbin/haproxy".into(),
            agent_server_cert: SERVER_CERT_PATH.into(),
            agent_server_ca: CLIENT_CA_PATH.into(),
            agent_request_read_timeout: 180,
            controller_ip_port_list: Vec::new(),
            heartbeat_interval: 10.0,
            heartbeat_key: String::new(),
            topology: "SINGLE".into(),
            debug: false,
            logs: LogShipping::default(),
        }
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

impl AgentConf {
    /// Whether `text` is in this layout (rather than rocta's older TOML agent file).
    pub fn is_octavia(text: &str) -> bool {
        text.lines().any(|l| {
            matches!(
                l.trim(),
                "[amphora_agent]" | "[haproxy_amphora]" | "[health_manager]"
            )
        })
    }

    /// The file, as Octavia's template lays it out.
    pub fn render(&self) -> String {
        let l = &self.logs;
        let mut out = format!(
            "[DEFAULT]\ndebug = {debug}\nuse_syslog = True\nsyslog_log_facility = LOG_LOCAL{admin}\n\n\
             [haproxy_amphora]\nbase_cert_dir = {certs}\nbase_path = {base}\nbind_host = {host}\n\
             bind_port = {port}\nhaproxy_cmd = {hx}\nrespawn_count = 2\nrespawn_interval = 2\n\
             use_upstart = True\nuser_log_facility = {user}\nadministrative_log_facility = {admin}\n\n\
             [health_manager]\ncontroller_ip_port_list = {ctl}\nheartbeat_interval = {iv}\n\
             heartbeat_key = {key}\n\n\
             [amphora_agent]\nagent_server_ca = {ca}\nagent_server_cert = {cert}\n\
             agent_request_read_timeout = {rt}\namphora_id = {id}\n\
             amphora_udp_driver = keepalived_lvs\nagent_tls_protocol = TLSv1.2\n",
            debug = py_bool(self.debug),
            admin = l.administrative_log_facility,
            user = if l.administrative_log_facility == 0 { 1 } else { 0 },
            certs = self.base_cert_dir,
            base = self.base_path,
            host = self.bind_host,
            port = self.bind_port,
            hx = self.haproxy_cmd,
            ctl = self.controller_ip_port_list.join(", "),
            iv = self.heartbeat_interval,
            key = self.heartbeat_key,
            ca = self.agent_server_ca,
            cert = self.agent_server_cert,
            rt = self.agent_request_read_timeout,
            id = self.amphora_id,
        );
        if l.ships() {
            out += &format!(
                "admin_log_targets = {}\ntenant_log_targets = {}\nlog_protocol = {}\n\
                 log_retry_count = {}\nlog_retry_interval = {}\nlog_queue_size = {}\n\
                 forward_all_logs = {}\ndisable_local_log_storage = {}\n",
                l.admin_log_targets.join(", "),
                l.tenant_log_targets.join(", "),
                l.log_protocol,
                l.log_retry_count,
                l.log_retry_interval,
                l.log_queue_size,
                py_bool(l.forward_all_logs),
                py_bool(l.disable_local_log_storage),
            );
        }
        out + &format!(
            "\n[controller_worker]\nloadbalancer_topology = {}\n",
            self.topology
        )
    }

    /// Reads the file (oslo.config's INI): options missing take Octavia's defaults; an option
    /// of the wrong type, or no `amphora_id`, is an error naming it.
    pub fn parse(text: &str) -> Result<AgentConf, String> {
        let ini = ini::Ini::load_from_str_opt(
            text,
            ini::ParseOption {
                enabled_quote: false,
                enabled_escape: false,
                enabled_indented_mutiline_value: true,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let get = |section: &str, key: &str| -> Option<String> {
            ini.section(Some(section))
                .and_then(|s| s.get(key))
                .map(|v| v.trim().to_string())
        };
        fn num<T: std::str::FromStr>(
            v: Option<String>,
            name: &str,
            default: T,
        ) -> Result<T, String> {
            match v {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("{name}: {v:?} is not a valid value")),
            }
        }
        fn boolean(v: Option<String>, name: &str, default: bool) -> Result<bool, String> {
            match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None => Ok(default),
                Some("true" | "1" | "yes" | "on") => Ok(true),
                Some("false" | "0" | "no" | "off") => Ok(false),
                Some(v) => Err(format!("{name}: {v:?} is not a boolean")),
            }
        }
        let list = |v: Option<String>| -> Option<Vec<String>> {
            v.map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
        };
        let d = AgentConf::default();
        let dl = LogShipping::default();
        let amphora_id = get("amphora_agent", "amphora_id")
            .filter(|s| !s.is_empty())
            .ok_or("[amphora_agent] amphora_id is required")?;
        let hm = |k| get("health_manager", k);
        let hx = |k| get("haproxy_amphora", k);
        let ag = |k| get("amphora_agent", k);
        Ok(AgentConf {
            amphora_id,
            bind_host: hx("bind_host").unwrap_or(d.bind_host),
            bind_port: num(hx("bind_port"), "[haproxy_amphora] bind_port", d.bind_port)?,
            base_path: hx("base_path").unwrap_or(d.base_path),
            base_cert_dir: hx("base_cert_dir").unwrap_or(d.base_cert_dir),
            haproxy_cmd: hx("haproxy_cmd").unwrap_or(d.haproxy_cmd),
            agent_server_cert: ag("agent_server_cert").unwrap_or(d.agent_server_cert),
            agent_server_ca: ag("agent_server_ca").unwrap_or(d.agent_server_ca),
            agent_request_read_timeout: num(
                ag("agent_request_read_timeout"),
                "[amphora_agent] agent_request_read_timeout",
                d.agent_request_read_timeout,
            )?,
            controller_ip_port_list: list(hm("controller_ip_port_list")).unwrap_or_default(),
            heartbeat_interval: num(
                hm("heartbeat_interval"),
                "[health_manager] heartbeat_interval",
                d.heartbeat_interval,
            )?,
            heartbeat_key: hm("heartbeat_key").unwrap_or_default(),
            topology: get("controller_worker", "loadbalancer_topology").unwrap_or(d.topology),
            debug: boolean(get("DEFAULT", "debug"), "[DEFAULT] debug", false)?,
            logs: LogShipping {
                admin_log_targets: list(ag("admin_log_targets")).unwrap_or_default(),
                tenant_log_targets: list(ag("tenant_log_targets")).unwrap_or_default(),
                log_protocol: ag("log_protocol").unwrap_or(dl.log_protocol),
                log_retry_count: num(
                    ag("log_retry_count"),
                    "[amphora_agent] log_retry_count",
                    dl.log_retry_count,
                )?,
                log_retry_interval: num(
                    ag("log_retry_interval"),
                    "[amphora_agent] log_retry_interval",
                    dl.log_retry_interval,
                )?,
                log_queue_size: num(
                    ag("log_queue_size"),
                    "[amphora_agent] log_queue_size",
                    dl.log_queue_size,
                )?,
                disable_local_log_storage: boolean(
                    ag("disable_local_log_storage"),
                    "[amphora_agent] disable_local_log_storage",
                    dl.disable_local_log_storage,
                )?,
                administrative_log_facility: num(
                    hx("administrative_log_facility"),
                    "[haproxy_amphora] administrative_log_facility",
                    dl.administrative_log_facility,
                )?,
                forward_all_logs: boolean(
                    ag("forward_all_logs"),
                    "[amphora_agent] forward_all_logs",
                    dl.forward_all_logs,
                )?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Octavia's template (`amphora_agent_conf.template`) filled with Octavia's defaults and
    /// two health managers: rocta reads what an Octavia controller sends.
    const OCTAVIA: &str = "[DEFAULT]
debug = False
use_syslog = True
syslog_log_facility = LOG_LOCAL1

[haproxy_amphora]
base_cert_dir = /var/lib/octavia/certs
base_path = /var/lib/octavia
bind_host = ::
bind_port = 9443
haproxy_cmd = /usr/sbin/haproxy
respawn_count = 2
respawn_interval = 2
use_upstart = True
user_log_facility = 0
administrative_log_facility = 1

[health_manager]
controller_ip_port_list = 192.168.0.10:5555, 192.168.0.11:5555
heartbeat_interval = 10
heartbeat_key = insecure

[amphora_agent]
agent_server_ca = /etc/octavia/certs/client_ca.pem
agent_server_cert = /etc/octavia/certs/server.pem
agent_request_read_timeout = 180
amphora_id = 2a5a8c4e-7c34-4cbb-9aa4-2ac1a2ae8e16
amphora_udp_driver = keepalived_lvs
agent_tls_protocol = TLSv1.2

[controller_worker]
loadbalancer_topology = SINGLE
";

    #[test]
    fn reads_what_octavia_renders() {
        assert!(AgentConf::is_octavia(OCTAVIA));
        let c = AgentConf::parse(OCTAVIA).unwrap();
        assert_eq!(c.amphora_id, "2a5a8c4e-7c34-4cbb-9aa4-2ac1a2ae8e16");
        assert_eq!(
            c.controller_ip_port_list,
            ["192.168.0.10:5555", "192.168.0.11:5555"]
        );
        assert_eq!((c.bind_host.as_str(), c.bind_port), ("::", 9443));
        assert_eq!(c.heartbeat_key, "insecure");
        assert_eq!(c.heartbeat_interval, 10.0);
        assert_eq!(c.logs, LogShipping::default());
        // rocta renders the same file (the same keys, values and order).
        assert_eq!(c.render(), OCTAVIA);
    }

    #[test]
    fn log_shipping_round_trips() {
        let c = AgentConf {
            amphora_id: "a".into(),
            logs: LogShipping {
                admin_log_targets: vec!["198.18.0.1:514".into()],
                tenant_log_targets: vec!["198.18.0.2:514".into(), "198.18.0.3:514".into()],
                log_protocol: "TCP".into(),
                forward_all_logs: true,
                disable_local_log_storage: true,
                ..LogShipping::default()
            },
            ..AgentConf::default()
        };
        assert_eq!(AgentConf::parse(&c.render()).unwrap(), c);
    }

    #[test]
    fn bad_values_are_named() {
        let e =
            AgentConf::parse("[amphora_agent]\namphora_id = a\n[haproxy_amphora]\nbind_port = x\n");
        assert_eq!(
            e.unwrap_err(),
            "[haproxy_amphora] bind_port: \"x\" is not a valid value"
        );
        let e = AgentConf::parse("[health_manager]\nheartbeat_key = k\n");
        assert_eq!(e.unwrap_err(), "[amphora_agent] amphora_id is required");
        assert!(!AgentConf::is_octavia("amphora_id = \"a\"\nbind = \"x\"\n"));
    }
}
