#!/usr/bin/env python3
"""The hypervisor of rocta's OpenStack tests and benchmarks (run as root).

Usage: hypervisor.py READY_JSON ROCTA WORKDIR NETWORK_ID=BRIDGE=HOST_CIDR ...

Nova's fake virt driver boots nothing, so this plays the compute host as a real one would:
each given Neutron network is a Linux bridge on this host holding HOST_CIDR (the subnet's
gateway address: the control plane, clients and members reach the amphorae through it);
when Nova reports an `amphora-*` server ACTIVE, its instance is a network namespace
(`rosvm-<8 hex of the server id>`) with a veth per port Nova attached to it (the port's MAC;
the first, the management port, configured with its address as cloud-init would, the others
left for the agent, which finds them by MAC), its disk the config drive Nova gave it (the
files the fake virt driver kept under the stack's directory) mounted at `/etc/octavia`, with
`/var/lib/octavia` of its own, in a mount namespace of its own, and its init
`ROCTA amphora-agent --config /etc/octavia/amphora-agent.conf` (console:
WORKDIR/<server id>/console.log). Ports attached or detached later are plugged or
unplugged; a deleted server is powered off (its processes killed, namespace and veths
removed). Each round writes WORKDIR/guests.json (server id -> namespace and ports).

READY_JSON is the line stack.py printed (without "READY "), as a file. Prints "READY" once
the bridges are up; serves until its standard input closes, then powers every guest off,
removes the bridges (and /etc/octavia, /var/lib/octavia if it made them) and exits.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

READY = json.load(open(sys.argv[1]))
ROCTA = sys.argv[2]
WORK = sys.argv[3]
BRIDGES = [a.split("=", 2) for a in sys.argv[4:]]  # network id, bridge, host cidr[,cidr]
NETS = {net: bridge for net, bridge, _ in BRIDGES}
IMAGE_DIRS = ["/etc/octavia", "/var/lib/octavia"]
NOVA = READY["urls"]["nova"] + "/v2.1"
guests = {}  # server id -> {"ns", "ports": {port id: host veth}, "n", "agent"}
lock = threading.Lock()
stop = threading.Event()


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def token():
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": "admin-pass"}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    req = urllib.request.Request(READY["keystone"] + "/auth/tokens", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers["X-Subject-Token"]


TOKEN = [token(), time.monotonic()]


def nova(path):
    if time.monotonic() - TOKEN[1] > 1800:
        TOKEN[:] = [token(), time.monotonic()]
    req = urllib.request.Request(NOVA + path, headers={
        "X-Auth-Token": TOKEN[0], "Accept": "application/json",
        "X-OpenStack-Nova-API-Version": "2.15"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def config_drive(server):
    """The files of the server's config drive (path -> content), as the fake driver kept it."""
    root = os.path.join(READY["dir"], "nova", "instances", server, "config-drive", "openstack")
    md = json.load(open(os.path.join(root, "latest", "meta_data.json")))
    return {f["path"]: open(os.path.join(root, f["content_path"].lstrip("/"))).read()
            for f in md.get("files", [])}


def boot(server):
    d = os.path.join(WORK, server)
    root = os.path.join(d, "root")
    for path, content in config_drive(server).items():
        p = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(content)
    for m in IMAGE_DIRS:
        os.makedirs(os.path.join(root, m.lstrip("/")), exist_ok=True)
    ns = "rosvm-" + server[:8]
    ip("netns", "del", ns, check=False)
    ip("netns", "add", ns)
    ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
    script = (f"mount --bind {root}/etc/octavia /etc/octavia && "
              f"mount --bind {root}/var/lib/octavia /var/lib/octavia && "
              f"exec {ROCTA} amphora-agent --config /etc/octavia/amphora-agent.conf")
    console = open(os.path.join(d, "console.log"), "ab")
    agent = subprocess.Popen(["ip", "netns", "exec", ns, "unshare", "--mount", "sh", "-c", script],
                             stdin=subprocess.DEVNULL, stdout=console, stderr=console)
    return {"ns": ns, "ports": {}, "n": 0, "agent": agent, "dir": d}


def power_off(g):
    for pid in ip("netns", "pids", g["ns"], check=False).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    g["agent"].kill()
    g["agent"].wait()
    for host in g["ports"].values():
        ip("link", "del", host, check=False)
    ip("netns", "del", g["ns"], check=False)
    shutil.rmtree(g["dir"], ignore_errors=True)


def sync_ports(g, attachments):
    ids = {a["port_id"] for a in attachments}
    for port in [p for p in g["ports"] if p not in ids]:
        ip("link", "del", g["ports"].pop(port), check=False)
    for a in attachments:
        bridge = NETS.get(a["net_id"])
        if a["port_id"] in g["ports"] or bridge is None:
            continue
        n = g["n"]
        g["n"] += 1
        host, peer = f"rv{g['ns'][6:12]}{n}", f"rp{g['ns'][6:12]}{n}"
        ip("link", "del", host, check=False)
        ip("link", "add", host, "type", "veth", "peer", "name", peer)
        ip("link", "set", host, "master", bridge, "up")
        ip("link", "set", peer, "address", a["mac_addr"], "netns", g["ns"])
        name = "eth0" if n == 0 else f"nic{n}"
        ip("-n", g["ns"], "link", "set", peer, "name", name)
        if n == 0:
            ip("-n", g["ns"], "addr", "add", a["fixed_ips"][0]["ip_address"] + "/24", "dev", "eth0")
            ip("-n", g["ns"], "link", "set", "eth0", "up")
        g["ports"][a["port_id"]] = host


def round_():
    servers = nova("/servers/detail?all_tenants=1&name=%5Eamphora-")["servers"]
    active = {s["id"] for s in servers if s["status"] == "ACTIVE"}
    with lock:
        for server in [s for s in guests if s not in active]:
            power_off(guests.pop(server))
        for server in sorted(active):
            if server not in guests:
                guests[server] = boot(server)
                print(f"[hypervisor] booted {server} as {guests[server]['ns']}",
                      file=sys.stderr, flush=True)
            sync_ports(guests[server], nova(f"/servers/{server}/os-interface")["interfaceAttachments"])
        state = {s: {"ns": g["ns"], "ports": g["ports"]} for s, g in guests.items()}
    with open(os.path.join(WORK, "guests.json.new"), "w") as f:
        json.dump(state, f)
    os.replace(os.path.join(WORK, "guests.json.new"), os.path.join(WORK, "guests.json"))


def loop():
    while not stop.is_set():
        try:
            round_()
        except Exception as e:  # noqa: BLE001 (a round fails, the next one tries again)
            print(f"[hypervisor] {e}", file=sys.stderr, flush=True)
        stop.wait(0.2)


def main():
    os.makedirs(WORK, exist_ok=True)
    made = [d for d in IMAGE_DIRS if not os.path.exists(d)]
    for d in made:
        os.makedirs(d)
    for _, bridge, cidr in BRIDGES:
        ip("link", "del", bridge, check=False)
        ip("link", "add", bridge, "type", "bridge")
        for c in cidr.split(","):  # one address per subnet of the network
            ip("addr", "add", c, "dev", bridge)
        ip("link", "set", bridge, "up")
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        print("READY", flush=True)
        sys.stdin.read()
    finally:
        stop.set()
        t.join()
        with lock:
            for g in guests.values():
                power_off(g)
        for _, bridge, _ in BRIDGES:
            ip("link", "del", bridge, check=False)
        for d in made:
            try:
                os.rmdir(d)
            except OSError:
                pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
