//! Changes without reloads: the commands of HAProxy's runtime API (the stats socket) that take
//! a running HAProxy from one rendered configuration to the next, when the two differ only in
//! their `server` lines: members added (`add server`, then `enable server` and `enable
//! health`), removed (`set server … state maint`, `del server`), reweighted (`set server …
//! weight`), enabled/disabled (`set server … state ready|maint`) or monitored elsewhere
//! (`monitor_address` / `monitor_port`: `set server … check-addr A port P`). Anything else (a new
//! listener, a changed algorithm, a server line that changed otherwise, a server with a
//! cookie, which dynamic servers cannot have) needs the validated reload: [`plan`] says so
//! with `None`. Pure; the agent runs the commands and falls back to the reload if HAProxy
//! refuses one (a server that still has connections cannot be deleted), so the running state
//! and the file never disagree for long: the file is the truth either way.

use std::collections::BTreeMap;

/// One section of a configuration: its header, its other lines in order, its servers by name.
#[derive(Debug, Default, PartialEq)]
struct Section<'a> {
    header: &'a str,
    lines: Vec<&'a str>,
    servers: BTreeMap<&'a str, Vec<&'a str>>,
}

fn sections(cfg: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = vec![Section::default()];
    for line in cfg.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) && !trimmed.starts_with('#') {
            out.push(Section {
                header: trimmed,
                ..Default::default()
            });
            continue;
        }
        let Some(s) = out.last_mut() else { continue };
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        match words.as_slice() {
            ["server", name, rest @ ..] => {
                s.servers.insert(name, rest.to_vec());
            }
            _ => s.lines.push(trimmed),
        }
    }
    out
}

/// The server's options without `weight N`, `disabled` and the monitor's `addr A` / `port P`
/// (what the runtime API can change).
fn fixed<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i] {
            "weight" | "addr" | "port" => i += 2,
            "disabled" => i += 1,
            a => {
                out.push(a);
                i += 1;
            }
        }
    }
    out
}

/// The value of option `key` (`weight`, `addr`, `port`) of a server line.
fn option(args: &[&str], key: &str) -> Option<String> {
    args.windows(2)
        .find(|w| w[0] == key)
        .map(|w| w[1].to_string())
}

fn weight(args: &[&str]) -> Option<String> {
    option(args, "weight")
}

/// Where the server's monitor checks it: its `addr` / `port` options, else the server's own
/// address and port (`ip:port` or `[ip6]:port`, the line's first argument).
fn check_target(args: &[&str]) -> Option<(String, String)> {
    let (ip, port) = args.first()?.rsplit_once(':')?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    Some((
        option(args, "addr").unwrap_or_else(|| ip.to_string()),
        option(args, "port").unwrap_or_else(|| port.to_string()),
    ))
}

/// The runtime commands that turn a HAProxy running `old` into one running `new` (empty when
/// nothing differs), or `None` when only a reload can.
pub fn plan(old: &str, new: &str) -> Option<Vec<String>> {
    let (a, b) = (sections(old), sections(new));
    if a.len() != b.len() {
        return None;
    }
    let mut ops = Vec::new();
    for (o, n) in a.iter().zip(&b) {
        if o.header != n.header || o.lines != n.lines {
            return None;
        }
        if o.servers == n.servers {
            continue;
        }
        let backend = n.header.strip_prefix("backend ")?;
        // Removals first, then additions and changes.
        for name in o.servers.keys() {
            if !n.servers.contains_key(name) {
                ops.push(format!("set server {backend}/{name} state maint"));
                ops.push(format!("del server {backend}/{name}"));
            }
        }
        for (name, args) in &n.servers {
            let srv = format!("{backend}/{name}");
            let disabled = args.contains(&"disabled");
            match o.servers.get(name) {
                None => {
                    if args.contains(&"cookie") {
                        return None;
                    }
                    let opts: Vec<&str> =
                        args.iter().copied().filter(|a| *a != "disabled").collect();
                    ops.push(format!("add server {srv} {}", opts.join(" ")));
                    if !disabled {
                        ops.push(format!("enable server {srv}"));
                    }
                    if args.contains(&"check") {
                        ops.push(format!("enable health {srv}"));
                    }
                }
                Some(before) if before == args => {}
                Some(before) => {
                    if fixed(before) != fixed(args) {
                        return None;
                    }
                    if let (Some(w), true) = (weight(args), weight(before) != weight(args)) {
                        ops.push(format!("set server {srv} weight {w}"));
                    }
                    let monitored = args.contains(&"check");
                    if monitored && check_target(before) != check_target(args) {
                        let (addr, port) = check_target(args)?;
                        ops.push(format!("set server {srv} check-addr {addr} port {port}"));
                    }
                    if before.contains(&"disabled") != disabled {
                        let state = if disabled { "maint" } else { "ready" };
                        ops.push(format!("set server {srv} state {state}"));
                    }
                }
            }
        }
    }
    Some(ops)
}

#[cfg(test)]
mod tests;
