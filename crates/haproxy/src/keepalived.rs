//! Renders the keepalived VRRP configuration of one amphora of an ACTIVE_STANDBY pair, as
//! Octavia's `keepalived_base.template` (reference/octavia.md §6.6): one `vrrp_instance` named
//! after the load balancer, unicast to the peer, `nopreempt`, the VIP as its virtual address,
//! and a check script that follows HAProxy's health. rocta speaks VRRPv3 so that the
//! advertisement interval can be below a second (the failover target is 1 s; Octavia's 1 s
//! adverts take about 3 s); VRRPv3 has no authentication, so Octavia's `auth_type PASS` (a
//! password sent in clear on the VIP network) has no counterpart. Pure: golden-tested,
//! checked with `keepalived -t`.

use std::fmt::Write;

/// What one amphora's keepalived needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Vrrp {
    /// The load balancer's id without dashes (Octavia's VRRP group name).
    pub group: String,
    /// The interface carrying the VIP (`eth1`).
    pub interface: String,
    pub virtual_router_id: u8,
    /// 100 for MASTER, 90 for BACKUP (Octavia's).
    pub priority: u8,
    /// This amphora's own address on the VIP network.
    pub src_ip: String,
    pub peers: Vec<String>,
    /// VIPs with their prefix length (`198.19.0.42/24`).
    pub vips: Vec<String>,
    /// Seconds between advertisements (VRRPv3: hundredths of a second).
    pub advert_int: f64,
    /// The check script and its rhythm (`[keepalived_vrrp] vrrp_check_interval`,
    /// `vrrp_fail_count`, `vrrp_success_count`).
    pub check_script: String,
    pub check_interval: f64,
    pub fall: u32,
    pub rise: u32,
    /// `[keepalived_vrrp] vrrp_garp_refresh_interval` / `vrrp_garp_refresh_count`.
    pub garp_refresh: u32,
    pub garp_refresh_repeat: u32,
}

/// The keepalived configuration of `v`.
pub fn render(v: &Vrrp) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "# Rendered by rocta for load balancer {group}.\n\
         global_defs {{\n\
         \x20   vrrp_version 3\n\
         \x20   enable_script_security\n\
         \x20   script_user root\n\
         \x20   vrrp_garp_master_delay 0\n\
         }}\n\n\
         vrrp_script check_script {{\n\
         \x20   script \"{script}\"\n\
         \x20   interval {ci}\n\
         \x20   fall {fall}\n\
         \x20   rise {rise}\n\
         }}\n\n\
         vrrp_instance {group} {{\n\
         \x20   state BACKUP\n\
         \x20   interface {intf}\n\
         \x20   virtual_router_id {vrid}\n\
         \x20   priority {prio}\n\
         \x20   nopreempt\n\
         \x20   accept\n\
         \x20   garp_master_refresh {gr}\n\
         \x20   garp_master_refresh_repeat {grr}\n\
         \x20   advert_int {adv}\n\n\
         \x20   unicast_src_ip {src}\n\
         \x20   unicast_peer {{\n",
        group = v.group,
        script = v.check_script,
        ci = seconds(v.check_interval),
        fall = v.fall,
        rise = v.rise,
        intf = v.interface,
        vrid = v.virtual_router_id,
        prio = v.priority,
        gr = v.garp_refresh,
        grr = v.garp_refresh_repeat,
        adv = seconds(v.advert_int),
        src = v.src_ip,
    );
    for p in &v.peers {
        let _ = writeln!(s, "        {p}");
    }
    s.push_str("    }\n\n    virtual_ipaddress {\n");
    for vip in &v.vips {
        let _ = writeln!(s, "        {vip} dev {}", v.interface);
    }
    s.push_str("    }\n\n    track_script {\n        check_script\n    }\n}\n");
    s
}

/// Seconds as keepalived reads them: hundredths at most, no trailing zeros.
fn seconds(x: f64) -> String {
    let c = (x * 100.0).round().max(1.0) as u64;
    if c.is_multiple_of(100) {
        (c / 100).to_string()
    } else {
        format!("{}.{:02}", c / 100, c % 100)
            .trim_end_matches('0')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn master() -> Vrrp {
        Vrrp {
            group: "5f0e1a2b3c4d4e5f8a9b0c1d2e3f4a5b".into(),
            interface: "eth1".into(),
            virtual_router_id: 1,
            priority: 100,
            src_ip: "198.19.0.21".into(),
            peers: vec!["198.19.0.22".into()],
            vips: vec!["198.19.0.42/24".into()],
            advert_int: 0.2,
            check_script: "/var/lib/rocta/vrrp/check.sh".into(),
            check_interval: 1.0,
            fall: 2,
            rise: 2,
            garp_refresh: 5,
            garp_refresh_repeat: 2,
        }
    }

    #[test]
    fn an_active_standby_member() {
        insta::assert_snapshot!(render(&master()));
        assert_eq!(seconds(0.2), "0.2");
        assert_eq!(seconds(1.0), "1");
        assert_eq!(seconds(0.05), "0.05");
        assert_eq!(seconds(2.5), "2.5");
    }

    /// keepalived itself accepts it (`keepalived -t`; installed on CI).
    #[test]
    fn keepalived_accepts_it() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("check.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        let conf = d.path().join("keepalived.conf");
        let v = Vrrp {
            check_script: script.display().to_string(),
            ..master()
        };
        std::fs::write(&conf, render(&v)).unwrap();
        // keepalived checks that the interface exists: an amphora-like namespace with an eth1.
        let ns = format!("rocta-kt{}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = std::process::Command::new("ip").args(args).status();
            assert!(ok.is_ok_and(|s| s.success()), "ip {args:?}");
        };
        ip(&["netns", "add", &ns]);
        ip(&[
            "-n", &ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
        ]);
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "keepalived", "-t", "-f"])
            .arg(&conf)
            .output();
        ip(&["netns", "del", &ns]);
        let out = out.expect("keepalived is installed (apt-get install -y keepalived)");
        assert!(
            out.status.success(),
            "keepalived -t: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
