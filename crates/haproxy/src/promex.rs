//! HAProxy's Prometheus exporter renamed as Octavia's amphora `prometheus-proxy` renames it, so
//! the dashboards and alerts written for Octavia's PROMETHEUS listeners read rocta's unchanged:
//! `haproxy_process_*` → `octavia_loadbalancer_*` (its memory pools → `octavia_memory_pool_*`),
//! `haproxy_frontend_*` → `octavia_listener_*` (label `proxy` → `listener`),
//! `haproxy_backend_*` → `octavia_pool_*` (`proxy` → `pool`; servers → members) and
//! `haproxy_server_*` → `octavia_member_*` (`proxy` → `pool`, `server` → `member`). Only the
//! metrics Octavia passes are kept, and nothing of the internal exporter's own proxies. Pure.

/// The HAProxy metrics Octavia passes, by family, without `haproxy_<family>_`; each keeps its
/// name under the family's new prefix.
#[rustfmt::skip]
const PROCESS: &[&str] = &[
    "max_connections", "current_connections", "connections_total", "requests_total",
    "max_ssl_connections", "current_ssl_connections", "ssl_connections_total",
    "current_connection_rate", "limit_connection_rate", "max_connection_rate",
    "current_session_rate", "limit_session_rate", "max_session_rate", "current_ssl_rate",
    "limit_ssl_rate", "max_ssl_rate", "current_frontend_ssl_key_rate",
    "max_frontend_ssl_key_rate", "frontend_ssl_reuse", "current_backend_ssl_key_rate",
    "max_backend_ssl_key_rate", "ssl_cache_lookups_total", "ssl_cache_misses_total",
    "http_comp_bytes_in_total", "http_comp_bytes_out_total", "limit_http_comp", "listeners",
    "dropped_logs_total",
];
#[rustfmt::skip]
const FRONTEND: &[&str] = &[
    "status", "current_sessions", "max_sessions", "limit_sessions", "sessions_total",
    "limit_session_rate", "max_session_rate", "connections_rate_max", "connections_total",
    "bytes_in_total", "bytes_out_total", "requests_denied_total", "responses_denied_total",
    "request_errors_total", "denied_connections_total", "denied_sessions_total",
    "failed_header_rewriting_total", "http_requests_rate_max", "http_requests_total",
    "http_responses_total", "intercepted_requests_total", "http_cache_lookups_total",
    "http_cache_hits_total", "http_comp_bytes_in_total", "http_comp_bytes_out_total",
    "http_comp_bytes_bypassed_total", "http_comp_responses_total",
];
#[rustfmt::skip]
const BACKEND: &[&str] = &[
    "status", "current_sessions", "max_sessions", "limit_sessions", "sessions_total",
    "max_session_rate", "last_session_seconds", "current_queue", "max_queue",
    "connection_attempts_total", "connection_reuses_total", "bytes_in_total", "bytes_out_total",
    "queue_time_average_seconds", "connect_time_average_seconds", "response_time_average_seconds",
    "total_time_average_seconds", "max_queue_time_seconds", "max_connect_time_seconds",
    "max_response_time_seconds", "max_total_time_seconds", "requests_denied_total",
    "responses_denied_total", "connection_errors_total", "response_errors_total",
    "retry_warnings_total", "redispatch_warnings_total", "failed_header_rewriting_total",
    "client_aborts_total", "check_up_down_total", "check_last_change_seconds",
    "downtime_seconds_total", "loadbalanced_total", "http_requests_total", "http_responses_total",
    "http_cache_lookups_total", "http_cache_hits_total", "http_comp_bytes_in_total",
    "http_comp_bytes_out_total", "http_comp_bytes_bypassed_total", "http_comp_responses_total",
];
#[rustfmt::skip]
const SERVER: &[&str] = &[
    "status", "current_sessions", "max_sessions", "limit_sessions", "sessions_total",
    "max_session_rate", "last_session_seconds", "current_queue", "max_queue", "queue_limit",
    "bytes_in_total", "bytes_out_total", "queue_time_average_seconds",
    "connect_time_average_seconds", "response_time_average_seconds", "total_time_average_seconds",
    "max_queue_time_seconds", "max_connect_time_seconds", "max_response_time_seconds",
    "max_total_time_seconds", "connection_attempts_total", "connection_reuses_total",
    "responses_denied_total", "connection_errors_total", "response_errors_total",
    "retry_warnings_total", "redispatch_warnings_total", "failed_header_rewriting_total",
    "client_aborts_total", "server_aborts_total", "weight", "check_failures_total",
    "check_up_down_total", "downtime_seconds_total", "check_last_change_seconds",
    "current_throttle", "loadbalanced_total", "http_responses_total", "idle_connections_current",
    "idle_connections_limit",
];
/// Names Octavia changes beyond the prefix.
const RENAMED: &[(&str, &str)] = &[
    (
        "haproxy_process_pool_allocated_bytes",
        "octavia_memory_pool_allocated_bytes",
    ),
    (
        "haproxy_process_pool_used_bytes",
        "octavia_memory_pool_used_bytes",
    ),
    (
        "haproxy_process_pool_failures_total",
        "octavia_memory_pool_failures_total",
    ),
    (
        "haproxy_backend_server_aborts_total",
        "octavia_pool_member_aborts_total",
    ),
    (
        "haproxy_backend_active_servers",
        "octavia_pool_active_members",
    ),
    (
        "haproxy_backend_backup_servers",
        "octavia_pool_backup_members",
    ),
];

/// Label key renames (HAProxy's → Octavia's).
type Renames = &'static [(&'static str, &'static str)];

/// A family of HAProxy metrics: its prefix, Octavia's, the names kept, the label renames.
struct Family(&'static str, &'static str, &'static [&'static str], Renames);

/// Octavia's name for HAProxy metric `name` and the label renames of its family; `None` for a
/// metric Octavia does not pass.
fn octavia_name(name: &str) -> Option<(String, Renames)> {
    const LISTENER: &[(&str, &str)] = &[("proxy", "listener")];
    const POOL: &[(&str, &str)] = &[("proxy", "pool")];
    const MEMBER: &[(&str, &str)] = &[("proxy", "pool"), ("server", "member")];
    if let Some((_, to)) = RENAMED.iter().find(|(from, _)| *from == name) {
        let labels = if name.starts_with("haproxy_backend_") {
            POOL
        } else {
            &[]
        };
        return Some((to.to_string(), labels));
    }
    let families = [
        Family("haproxy_process_", "octavia_loadbalancer_", PROCESS, &[]),
        Family("haproxy_frontend_", "octavia_listener_", FRONTEND, LISTENER),
        Family("haproxy_backend_", "octavia_pool_", BACKEND, POOL),
        Family("haproxy_server_", "octavia_member_", SERVER, MEMBER),
    ];
    families.iter().find_map(|Family(from, to, kept, labels)| {
        let rest = name.strip_prefix(from)?;
        kept.contains(&rest)
            .then(|| (format!("{to}{rest}"), *labels))
    })
}

/// Renames the label keys of a sample's `{...}` part (values are quoted and left alone).
fn rename_labels(labels: &str, renames: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(labels.len() + 8);
    let mut rest = labels;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(',') {
            out.push(',');
            rest = r;
            continue;
        }
        // A key runs to '='; its value is a quoted string with backslash escapes.
        let Some((key, value)) = rest.split_once('=') else {
            out.push_str(rest);
            break;
        };
        out.push_str(
            renames
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(key, |(_, v)| v),
        );
        out.push('=');
        let mut end = None;
        let mut escaped = false;
        for (i, ch) in value.char_indices().skip(1) {
            match ch {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i + 1);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else {
            out.push_str(value);
            break;
        };
        out.push_str(&value[..end]);
        rest = &value[end..];
    }
    out
}

/// HAProxy's exporter text (format 0.0.4) as Octavia's metrics proxy serves it.
pub fn to_octavia(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        // Octavia's proxy leaves out its internal exporter frontend and backend.
        if line.contains("prometheus-exporter") {
            continue;
        }
        if let Some(meta) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            let (name, rest) = meta.split_once(' ').unwrap_or((meta, ""));
            if let Some((to, _)) = octavia_name(name) {
                out.push_str(&line[..7]);
                out.push_str(&to);
                out.push(' ');
                out.push_str(rest);
                out.push('\n');
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let Some((to, renames)) = octavia_name(&line[..end]) else {
            continue;
        };
        out.push_str(&to);
        let rest = &line[end..];
        match rest.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((labels, value)) => {
                out.push('{');
                out.push_str(&rename_labels(labels, renames));
                out.push('}');
                out.push_str(value);
            }
            None => out.push_str(rest),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORTED: &str = include_str!("../fixtures/promex.txt");

    #[test]
    fn renames_as_octavia_and_keeps_only_what_it_passes() {
        let out = to_octavia(EXPORTED);
        assert!(!out.contains("haproxy_"), "{out}");
        assert!(!out.contains("prometheus-exporter"), "{out}");
        let l = "10000000-0000-4000-8000-00000000000a";
        let p = format!("10000000-0000-4000-8000-000000000014:{l}");
        let m = "10000000-0000-4000-8000-00000000001e";
        for want in [
            "# TYPE octavia_loadbalancer_current_connections gauge".to_string(),
            format!("octavia_listener_http_requests_total{{listener=\"{l}\"}} 2"),
            format!("octavia_listener_http_responses_total{{listener=\"{l}\",code=\"2xx\"}} 2"),
            format!("octavia_pool_active_members{{pool=\"{p}\"}} 1"),
            format!("octavia_member_weight{{pool=\"{p}\",member=\"{m}\"}} 1"),
            "# TYPE octavia_memory_pool_used_bytes gauge".into(),
        ] {
            assert!(out.lines().any(|x| x == want), "{want} missing:\n{out}");
        }
        // HAProxy's own figures Octavia drops (build info, threads) stay out.
        assert!(!out.contains("nbthread"), "{out}");
        // Every sample kept has its HELP and TYPE.
        for s in out.lines().filter(|l| !l.starts_with('#')) {
            let name = &s[..s.find(['{', ' ']).unwrap()];
            assert!(out.contains(&format!("# TYPE {name} ")), "{s}");
        }
    }

    #[test]
    fn label_values_are_left_alone() {
        assert_eq!(
            rename_labels(
                r#"proxy="a\"proxy=b",server="s""#,
                &[("proxy", "pool"), ("server", "member")]
            ),
            r#"pool="a\"proxy=b",member="s""#
        );
    }
}
