//! Which changes the runtime API can make, and the commands for them.

use super::plan;

const BASE: &str = "# Rendered by rocta for load balancer x; do not edit.
global
    maxconn 100

frontend l
    bind 127.0.0.1:80
    default_backend p:l

backend p:l
    mode http
    balance roundrobin
    server a 127.0.0.1:9001 weight 1 check inter 5s fall 3 rise 2
    server b 127.0.0.1:9002 weight 1 check inter 5s fall 3 rise 2
";

fn with_servers(servers: &[&str]) -> String {
    let head = BASE.split("    server a").next().unwrap();
    let mut s = head.to_string();
    for l in servers {
        s.push_str("    ");
        s.push_str(l);
        s.push('\n');
    }
    s
}

#[test]
fn nothing_changed_is_no_command() {
    assert_eq!(plan(BASE, BASE), Some(vec![]));
}

#[test]
fn members_added_removed_reweighted_and_disabled() {
    let a = "server a 127.0.0.1:9001 weight 1 check inter 5s fall 3 rise 2";
    let new = with_servers(&[
        a,
        "server c 127.0.0.1:9003 weight 5 check inter 5s fall 3 rise 2 backup",
    ]);
    assert_eq!(
        plan(BASE, &new).unwrap(),
        [
            "set server p:l/b state maint",
            "del server p:l/b",
            "add server p:l/c 127.0.0.1:9003 weight 5 check inter 5s fall 3 rise 2 backup",
            "enable server p:l/c",
            "enable health p:l/c",
        ]
    );
    let changed = with_servers(&[
        "server a 127.0.0.1:9001 weight 7 check inter 5s fall 3 rise 2 disabled",
        "server b 127.0.0.1:9002 weight 1 check inter 5s fall 3 rise 2",
    ]);
    assert_eq!(
        plan(BASE, &changed).unwrap(),
        ["set server p:l/a weight 7", "set server p:l/a state maint"]
    );
    assert_eq!(
        plan(&changed, BASE).unwrap(),
        ["set server p:l/a weight 1", "set server p:l/a state ready"]
    );
    // The monitor moved to another address and port, and back to the member's own.
    let moved = with_servers(&[
        "server a 127.0.0.1:9001 weight 1 check inter 5s fall 3 rise 2 addr 127.0.0.9 port 7000",
        "server b 127.0.0.1:9002 weight 1 check inter 5s fall 3 rise 2",
    ]);
    assert_eq!(
        plan(BASE, &moved).unwrap(),
        ["set server p:l/a check-addr 127.0.0.9 port 7000"]
    );
    assert_eq!(
        plan(&moved, BASE).unwrap(),
        ["set server p:l/a check-addr 127.0.0.1 port 9001"]
    );
    // A disabled new member is added but not enabled; without a monitor, no health.
    let off = with_servers(&[
        a,
        "server b 127.0.0.1:9002 weight 1 check inter 5s fall 3 rise 2",
        "server d 127.0.0.1:9004 weight 1 disabled",
    ]);
    assert_eq!(
        plan(BASE, &off).unwrap(),
        ["add server p:l/d 127.0.0.1:9004 weight 1"]
    );
}

#[test]
fn anything_else_needs_a_reload() {
    let a = "server a 127.0.0.1:9001 weight 1 check inter 5s fall 3 rise 2";
    for new in [
        // A member's address or monitor changed.
        with_servers(&[
            a,
            "server b 127.0.0.1:9009 weight 1 check inter 5s fall 3 rise 2",
        ]),
        with_servers(&[
            a,
            "server b 127.0.0.1:9002 weight 1 check inter 9s fall 3 rise 2",
        ]),
        // Dynamic servers cannot have a cookie.
        with_servers(&[
            a,
            "server b 127.0.0.1:9002 weight 1 check inter 5s fall 3 rise 2",
            "server c 127.0.0.1:9003 weight 1 cookie c",
        ]),
        // Anything outside the servers.
        BASE.replace("roundrobin", "leastconn"),
        BASE.replace("maxconn 100", "maxconn 200"),
        format!("{BASE}\nbackend q:l\n    mode http\n"),
    ] {
        assert_eq!(plan(BASE, &new), None, "{new}");
    }
}
