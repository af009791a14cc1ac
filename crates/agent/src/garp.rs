//! Gratuitous ARP for a plugged VIP (Octavia's agent sends them after plugging in SINGLE
//! topology; keepalived does for a pair): the host's neighbour entry moves to this amphora's
//! MAC at once after a failover, rather than when the old entry goes stale (about 30 s, while
//! the dead amphora's namespace refuses every connection). The kernel's own announcement when
//! the interface comes up (`arp_notify`) can be lost while the link is still being activated,
//! so `arping -U` (iputils; Octavia builds the frames itself over a packet socket, which this
//! workspace's `forbid(unsafe_code)` rules out) sends three, a second apart.

use std::net::Ipv4Addr;

/// The command that announces `ip` on `ifname`.
pub fn command(ifname: &str, ip: Ipv4Addr) -> Vec<String> {
    [
        "arping",
        "-q",
        "-U",
        "-c",
        "3",
        "-I",
        ifname,
        &ip.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Announces `ip` on `ifname` in the background.
pub fn announce(ifname: String, ip: Ipv4Addr) {
    tokio::spawn(async move {
        let argv = command(&ifname, ip);
        let r = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .output()
            .await;
        match r {
            // arping -U exits 1 when nobody answers, which is the point of a gratuitous ARP.
            Ok(o) if o.status.code().is_some_and(|c| c <= 1) => {}
            Ok(o) => tracing::warn!(%ip, interface = %ifname,
                error = %String::from_utf8_lossy(&o.stderr).trim(), "gratuitous ARP not sent"),
            Err(e) => tracing::warn!(%ip, interface = %ifname, error = %e,
                "gratuitous ARP not sent (apt-get install -y iputils-arping)"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_unsolicited_requests_on_the_vip_interface() {
        assert_eq!(
            command("eth1", "198.19.0.42".parse().unwrap()).join(" "),
            "arping -q -U -c 3 -I eth1 198.19.0.42"
        );
    }
}
