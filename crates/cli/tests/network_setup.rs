//! `rocta network setup` / `teardown` for real, inside network namespaces this test creates
//! (a "host" and an "amphora" plugged into the host's management bridge), removed at the end:
//! the bridge, the controller's port and address, the VXLAN, the filter letting through only
//! the agent port, the default tenant network, idempotence, and bad input refused with nothing
//! created.

mod common;

use std::process::Command;

use common::netns::Ns;

/// Whether a TCP connection from `ns` to `addr:port` opens within a second.
fn connects(ns: &Ns, addr: &str, port: u16) -> bool {
    let code = format!(
        "import socket,sys\ns=socket.socket()\ns.settimeout(1)\n\
         try:\n s.connect(('{addr}',{port}))\nexcept Exception:\n sys.exit(1)\n"
    );
    ns.run(&["python3", "-c", &code]).status.success()
}

#[test]
fn setup_builds_the_management_network_and_teardown_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rocta.toml");
    std::fs::write(&config, "[health_manager]\nbind_port = 5555\n").unwrap();
    let host = Ns::new("h");
    // An underlay interface for the VXLAN.
    host.ip(&[
        "link", "add", "und0", "type", "veth", "peer", "name", "und1",
    ]);
    host.ip(&["addr", "add", "198.19.255.1/24", "dev", "und0"]);
    host.ip(&["link", "set", "und0", "up"]);
    let vx = [
        "--vxlan-id",
        "42",
        "--local",
        "198.19.255.1",
        "--remote",
        "198.19.255.2",
        "--dev",
        "und0",
    ];

    // Bad input: one line, exit 64, nothing created.
    for (args, want) in [
        (
            vec!["setup", "--vxlan-id", "42"],
            "--vxlan-id needs --local ADDR",
        ),
        (
            [&["setup"], &vx[..6], &["--dev", "nope0"][..]].concat(),
            "--dev nope0: no such interface",
        ),
        (
            vec!["setup", "--vxlan-id", "42", "--local", "198.19.255.1"],
            "needs --remote",
        ),
    ] {
        let out = host.rocta(&args, &config);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(
            err.contains(want) && err.trim().lines().count() == 1,
            "{err}"
        );
        assert!(!host.has_link("rocta-mgmt"), "{args:?} created something");
    }
    let overlapping = dir.path().join("overlap.toml");
    std::fs::write(
        &overlapping,
        "[netns]\nmanagement_cidr = \"198.19.255.0/25\"\n",
    )
    .unwrap();
    let out = host.rocta(&["setup"], &overlapping);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlaps 198.19.255.0/24"));
    assert!(!host.has_link("rocta-mgmt"));

    // --dry-run prints the commands and changes nothing.
    let mut args = vec!["setup", "--dry-run"];
    args.extend(vx);
    let out = host.rocta(&args, &config);
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("ip link add rocta-vx42 type vxlan id 42 local 198.19.255.1"),
        "{printed}"
    );
    assert!(!host.has_link("rocta-mgmt"));

    // The real thing, twice (the second run finds everything in place).
    let mut args = vec!["setup"];
    args.extend(vx);
    for _ in 0..2 {
        let out = host.rocta(&args, &config);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let addr = host.ip(&["-4", "-o", "addr", "show", "rocta-hm0"]);
    assert!(addr.contains("198.18.0.1/24"), "{addr}");
    // The default tenant network `public`, with this host's gateway on it.
    let public = host.ip(&["-4", "-o", "addr", "show", "rocta-public"]);
    assert!(public.contains("198.19.0.1/24"), "{public}");
    let link = host.ip(&["-d", "link", "show", "rocta-vx42"]);
    assert!(
        link.contains("vxlan id 42") && link.contains("master rocta-mgmt"),
        "{link}"
    );
    let fdb = String::from_utf8_lossy(
        &host
            .run(&["bridge", "fdb", "show", "dev", "rocta-vx42"])
            .stdout,
    )
    .into_owned();
    assert!(fdb.contains("dst 198.19.255.2"), "{fdb}");

    // An "amphora" on the bridge: its agent port is reachable from the controller's address,
    // any other port is not.
    let amp = Ns::new("a");
    host.ip(&[
        "link",
        "add",
        "rocta-t-amp",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &amp.0,
    ]);
    host.ip(&["link", "set", "rocta-t-amp", "master", "rocta-mgmt"]);
    host.ip(&["link", "set", "rocta-t-amp", "up"]);
    amp.ip(&["addr", "add", "198.18.0.10/24", "dev", "eth0"]);
    amp.ip(&["link", "set", "eth0", "up"]);
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &amp.0, "python3", "-c"])
        .arg(
            "import socket,time\nls=[]\nfor p in (9443,8080):\n s=socket.socket()\n \
             s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n s.bind(('0.0.0.0',p))\n \
             s.listen(8)\n ls.append(s)\ntime.sleep(30)\n",
        )
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !connects(&host, "198.18.0.10", 9443) {
        assert!(t.elapsed().as_secs() < 10, "the agent port never answered");
    }
    assert!(
        !connects(&host, "198.18.0.10", 8080),
        "the filter let another port through"
    );
    let _ = listener.kill();
    let _ = listener.wait();

    // Teardown removes everything rocta made, and is idempotent.
    for _ in 0..2 {
        let out = host.rocta(&["teardown", "--vxlan-id", "42"], &config);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for name in [
        "rocta-mgmt",
        "rocta-hm0",
        "rocta-hm0-br",
        "rocta-vx42",
        "rocta-public",
    ] {
        assert!(!host.has_link(name), "{name} left behind");
    }
    assert!(!host
        .run(&["nft", "list", "table", "bridge", "rocta_mgmt"])
        .status
        .success());
}
