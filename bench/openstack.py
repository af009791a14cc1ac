#!/usr/bin/env python3
"""Load balancer create -> ACTIVE on the OpenStack drivers, against real services.

Usage (root; scripts/openstack's venvs; a release build):
  cargo build --release --bin rocta
  sudo python3 bench/openstack.py [--rounds 3] [--burst 10]

Starts the OpenStack stack of the tests (tests/openstack/stack.py: Keystone, Nova with the
fake virt driver, Neutron, Glance, Placement, Barbican), the test hypervisor
(tests/openstack/hypervisor.py: each amphora server a network namespace running the agent
from its config drive) and `rocta serve` with compute_driver "nova" and network_driver
"neutron" (amp_active_wait_sec = 1, so a boot is noticed within a second, not Octavia's 10).
Then:
  1. `--rounds` fully populated load balancers (HTTP listener, pool, one member on another
     subnet), one after the other: POST -> ACTIVE, and of it the time Nova took to build the
     server (its created -> launched_at, as Nova records it); the rest is rocta's share (its
     flow, its calls to Keystone, Glance, Neutron and Nova, the agent's start on the
     hypervisor), broken down by rocta's flow steps (the worker's rocta_flow_task_duration
     from /metrics). The first request through each VIP is checked.
  2. `--burst` of them created at once: the time until the last is ACTIVE.
Everything is deleted and stopped at the end (the stack drops its databases).
"""
import argparse
import http.server
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import call, get, wait  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MASTER = os.environ.get("ROCTA_OS_PYTHON", "/opt/rocta-os-master/bin/python")


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_get(ready, url):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": "admin-pass"}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    req = urllib.request.Request(ready["keystone"] + "/auth/tokens", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        token = r.headers["X-Subject-Token"]
    req = urllib.request.Request(url, headers={"X-Auth-Token": token,
                                               "X-OpenStack-Nova-API-Version": "2.15"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--burst", type=int, default=10)
    ap.add_argument("--rocta", default=os.path.join(REPO, "target", "release", "rocta"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the hypervisor makes namespaces and bridges)")
    work = tempfile.mkdtemp(prefix="rocta-bench-openstack-")
    procs = []
    try:
        t0 = time.monotonic()
        stack = subprocess.Popen([MASTER, os.path.join(REPO, "tests/openstack/stack.py"),
                                  os.path.join(work, "stack")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(stack)
        line = stack.stdout.readline()
        if not line.startswith("READY "):
            sys.exit(f"the stack did not start: {line!r}")
        ready = json.loads(line[len("READY "):])
        print(f"OpenStack stack up in {time.monotonic() - t0:.0f} s")
        open(os.path.join(work, "ready.json"), "w").write(json.dumps(ready))
        nets = ready["networks"]
        hv = subprocess.Popen(
            ["python3", os.path.join(REPO, "tests/openstack/hypervisor.py"),
             os.path.join(work, "ready.json"), a.rocta, os.path.join(work, "guests"),
             f"{nets['lb-mgmt-net']['network_id']}=rosbm=198.19.251.1/24",
             f"{nets['public']['network_id']}=rosbp=198.19.252.1/24",
             f"{nets['private']['network_id']}=rosbv=198.19.253.1/24"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(hv)
        assert hv.stdout.readline().strip() == "READY"

        class Member(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"member-1")

            def log_message(self, *_):
                pass

        backend = http.server.ThreadingHTTPServer(("198.19.253.1", 0), Member)
        threading.Thread(target=backend.serve_forever, daemon=True).start()
        hm = free_port(socket.SOCK_DGRAM)
        api_port = free_port()
        config = f"""[controller_worker]
compute_driver = "nova"
network_driver = "neutron"
amp_image_tag = "amphora"
amp_flavor_id = "{ready['flavor_id']}"
amp_boot_network_list = ["{nets['lb-mgmt-net']['network_id']}"]
amp_active_retries = 300
amp_active_wait_sec = 1
[health_manager]
bind_ip = "198.19.251.1"
bind_port = {hm}
controller_ip_port_list = ["198.19.251.1:{hm}"]
[service_auth]
auth_url = "{ready['keystone']}"
username = "rocta"
password = "rocta-pass"
project_name = "service"
[nova]
region_name = "RegionOne"
[neutron]
region_name = "RegionOne"
[glance]
region_name = "RegionOne"
"""
        open(os.path.join(work, "rocta.toml"), "w").write(config)
        log = open(os.path.join(work, "serve.err"), "w")
        serve = subprocess.Popen([a.rocta, "serve", "--config", os.path.join(work, "rocta.toml"),
                                  "--data-dir", os.path.join(work, "data"),
                                  "--api-bind", f"127.0.0.1:{api_port}"],
                                 stdout=subprocess.DEVNULL, stderr=log)
        procs.insert(0, serve)
        api = f"http://127.0.0.1:{api_port}"
        wait("rocta's API", lambda: get(api + "/", 1), within=30)
        body = {"loadbalancer": {"vip_subnet_id": nets["public"]["subnet_id"], "listeners": [{
            "protocol": "HTTP", "protocol_port": 80, "default_pool": {
                "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": [{
                    "address": "198.19.253.1", "protocol_port": backend.server_address[1],
                    "subnet_id": nets["private"]["subnet_id"]}]}}]}}

        def status(lb):
            return call(api, "GET", f"/v2/lbaas/loadbalancers/{lb}")["loadbalancer"]["provisioning_status"]

        def active(lb):
            s = status(lb)
            if s == "ERROR":
                sys.exit(f"load balancer {lb} went ERROR; see {work}/serve.err")
            return s == "ACTIVE"

        def nova_build(lb):
            amps = call(api, "GET", f"/v2/octavia/amphorae?loadbalancer_id={lb}", admin=True)["amphorae"]
            s = admin_get(ready, f"{ready['urls']['nova']}/v2.1/servers/{amps[0]['compute_id']}")["server"]
            return ts(s["OS-SRV-USG:launched_at"] + "Z") - ts(s["created"])

        before = task_seconds(api)
        lbs = []
        totals, novas = [], []
        for i in range(a.rounds):
            t = time.monotonic()
            lb = call(api, "POST", "/v2/lbaas/loadbalancers", body)["loadbalancer"]
            wait(f"load balancer {i} ACTIVE", lambda: active(lb["id"]), within=300, step=0.05)
            total = time.monotonic() - t
            nova = nova_build(lb["id"])
            totals.append(total)
            novas.append(nova)
            lbs.append(lb["id"])
            wait("traffic through the VIP", lambda: get(f"http://{lb['vip_address']}/", 2), within=30)
            print(f"create -> ACTIVE {total:5.1f} s: Nova building the server {nova:4.1f} s, "
                  f"rocta and the rest {total - nova:4.1f} s")
        print(f"median of {a.rounds}: create -> ACTIVE {statistics.median(totals):.1f} s, "
              f"Nova {statistics.median(novas):.1f} s, rocta's share "
              f"{statistics.median([t - n for t, n in zip(totals, novas)]):.1f} s")
        # rocta's flow step by step: the worker's rocta_flow_task_duration (each step's time
        # until its result was journaled), summed over the rounds' creates, per create.
        after = task_seconds(api)
        steps = {k: (after[k] - before.get(k, 0.0)) / a.rounds for k in after
                 if after[k] - before.get(k, 0.0) > 0.0005}
        order = ["lb_error_on_revert", "create_amphora", "wait_amphora", "plug_vip",
                 "apply_config", "configure_vrrp", "mark_lb_active"]
        shown = sorted(steps, key=lambda k: order.index(k) if k in order else len(order))
        # Steps that journal nothing (apply_config, configure_vrrp: pushed again on resume)
        # are timed with the next journaled one.
        label = {"mark_lb_active": "apply_config+configure_vrrp+mark_lb_active"}
        print("per create, rocta's steps: "
              + ", ".join(f"{label.get(k, k)} {steps[k]:.2f} s" for k in shown)
              + f"; sum {sum(steps.values()):.1f} s (create_amphora includes Nova's build, "
              f"median {statistics.median(novas):.1f} s)")

        t = time.monotonic()
        burst = [call(api, "POST", "/v2/lbaas/loadbalancers", body)["loadbalancer"]["id"]
                 for _ in range(a.burst)]
        done = {}
        while len(done) < len(burst):
            for lb in burst:
                if lb not in done and active(lb):
                    done[lb] = time.monotonic() - t
            if time.monotonic() - t > 600:
                sys.exit(f"the burst did not finish: {len(done)} of {len(burst)} ACTIVE")
            time.sleep(0.1)
        times = sorted(done.values())
        print(f"{a.burst} at once: first ACTIVE {times[0]:.1f} s, median {statistics.median(times):.1f} s, "
              f"last {times[-1]:.1f} s")
        lbs += burst

        for lb in lbs:
            call(api, "DELETE", f"/v2/lbaas/loadbalancers/{lb}?cascade=true")
        for lb in lbs:
            wait("deleted", lambda: get_status_gone(api, lb), within=300, step=0.2)
        servers = admin_get(ready, f"{ready['urls']['nova']}/v2.1/servers?all_tenants=1")["servers"]
        print(f"deleted; servers left in Nova: {len(servers)}")
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
            else:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


def task_seconds(api):
    """The worker's rocta_flow_task_duration sums by task, from rocta's /metrics."""
    text = urllib.request.urlopen(api + "/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'rocta_flow_task_duration(?:_seconds)?_sum\{task="([^"]+)"\} (\S+)', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def get_status_gone(api, lb):
    try:
        call(api, "GET", f"/v2/lbaas/loadbalancers/{lb}")
        return False
    except urllib.error.HTTPError as e:
        return e.code == 404


if __name__ == "__main__":
    main()
