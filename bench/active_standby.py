#!/usr/bin/env python3
"""ACTIVE_STANDBY failover gap (issue 15): how long traffic through the VIP stops, and how many
requests fail, when everything in the MASTER amphora's namespace is killed with SIGKILL.

Starts `rocta serve --drivers netns` (release build; root) with `loadbalancer_topology =
ACTIVE_STANDBY` on networks of its own (bridges rocta-am / rocta-as, 198.18.201.0/24 and
198.19.201.0/24, torn down at the end) and one rocta-bench backend on the host's gateway address.
Each run creates a load balancer (HTTP listener, one member), waits until the VIP serves, then
one client sends a request at a time (200 ms timeout, no pause) for 3 s and the namespace of the
amphora holding the VIP (VRRP's MASTER) is emptied with kill -9 after 1 s. Per run: requests served and failed (a failure is
mostly a fast refusal: the dead namespace keeps the VIP on its interface until the BACKUP's
gratuitous ARP moves the host's neighbour entry), and the gap: the longest time between two
served requests. The load balancer is deleted after each run.
Bounded in time; only the benchmark's own bridges and namespaces are touched.
Usage: sudo python3 bench/active_standby.py [--runs N]   (default 5)
"""
import os, shutil, signal, statistics, subprocess, sys, threading, time

import benchlib
from benchlib import get, pids_in, wait

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROCTA = os.path.join(ROOT, "target", "release", "rocta")
BENCH = os.path.join(ROOT, "target", "release", "rocta-bench")
API = "http://127.0.0.1:19877"
SUBNET = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b"
GW = "198.19.201.1"
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
CONFIG = f"""[netns]
management_bridge = "rocta-am"
management_cidr = "198.18.201.0/24"
host_port = "rocta-ah"
[[netns.networks]]
name = "as"
cidr = "198.19.201.0/24"
network_id = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5a"
subnet_id = "{SUBNET}"
[health_manager]
bind_port = 15998
heartbeat_interval = 0.5
heartbeat_timeout = 3.0
[controller_worker]
loadbalancer_topology = "ACTIVE_STANDBY"
"""
procs = []


def call(method, path, body=None, admin=False):
    return benchlib.call(API, method, path, body, admin)


def cleanup(work):
    benchlib.cleanup(ROCTA, f"{work}/rocta.toml", procs, "198.18.201.")


def one_run():
    body = {"loadbalancer": {"vip_subnet_id": SUBNET,
            "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}}],
            "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                       "members": [{"address": GW, "protocol_port": 18083}]}]}}
    lb = call("POST", "/v2/lbaas/loadbalancers", body)["loadbalancer"]
    wait("ACTIVE", lambda: call("GET", f"/v2/lbaas/loadbalancers/{lb['id']}")["loadbalancer"]["provisioning_status"] == "ACTIVE")
    url = f"http://{lb['vip_address']}:8080/"
    wait("traffic", lambda: get(url, 0.5))
    amps = call("GET", f"/v2/octavia/amphorae?loadbalancer_id={lb['id']}", admin=True)["amphorae"]
    spaces = ["amphora-" + a["id"].replace("-", "")[:8] for a in amps if a["status"] == "ALLOCATED"]

    def holder():
        for ns in spaces:
            out = subprocess.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "eth1"],
                                 capture_output=True, text=True).stdout
            if f" {lb['vip_address']}/" in out:
                return ns
    # The amphora VRRP made MASTER (usually the one of role MASTER; nopreempt keeps whoever
    # won the first election).
    wait("a holder of the VIP", lambda: holder() is not None)
    ns = holder()
    log = []  # (time, served)
    stop = time.time() + 3

    def client():
        while time.time() < stop:
            ok = get(url, 0.2)
            log.append((time.time(), ok))
    t = threading.Thread(target=client)
    t.start()
    time.sleep(1)
    killed = time.time()
    for pid in pids_in(ns):
        os.kill(pid, signal.SIGKILL)
    t.join()
    served = [ts for ts, ok in log if ok]
    before = [ts for ts in served if ts < killed]
    after = [ts for ts in served if ts >= killed]
    if not before or not after:
        sys.exit("no traffic before or after the kill")
    gap = max(b - a for a, b in zip(served, served[1:]))
    failed = sum(1 for _, ok in log if not ok)
    failed_before = sum(1 for ts, ok in log if not ok and ts < killed)
    last_failure = max((ts for ts, ok in log if not ok), default=killed)
    print(f"  failed before the kill {failed_before}; last failure {1000 * (last_failure - killed):.0f} ms after it")
    call("DELETE", f"/v2/lbaas/loadbalancers/{lb['id']}?cascade=true")
    wait("deleted", lambda: call("GET", f"/v2/lbaas/loadbalancers?id={lb['id']}")["loadbalancers"] == [])
    return gap * 1000, len(served), failed


def main():
    work, serve = benchlib.start_serve(ROCTA, CONFIG, "127.0.0.1:19877", ("keepalived", "haproxy", "nft"), "rocta-as-", "198.18.201.")
    procs.append(serve)
    try:
        procs.append(subprocess.Popen([BENCH, "backend", "--port", "18083", "--bind", GW, "--name", "a"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.3)
        gaps = []
        for i in range(RUNS):
            gap, served, failed = one_run()
            gaps.append(gap)
            print(f"run {i + 1}: gap {gap:.0f} ms, {served} requests served, {failed} failed")
        print(f"ACTIVE_STANDBY, kill -9 of the MASTER: gap p50 {statistics.median(gaps):.0f} ms, "
              f"max {max(gaps):.0f} ms over {RUNS} runs (target <= 1000 ms)")
    finally:
        cleanup(work)
        shutil.rmtree(work, ignore_errors=True)


main()
