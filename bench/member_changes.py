#!/usr/bin/env python3
"""Changes without reloads (issue 16): how long a member change takes to reach ACTIVE on a real
amphora, how long a whole tree takes to serve, and whether requests fail while members come
and go under keep-alive load.

Starts `rocta serve --drivers netns` (release build; root) on networks of its own (bridges
rocta-cm / rocta-cs, 198.18.202.0/24 and 198.19.202.0/24, torn down at the end) and one Python
process serving HTTP keep-alive on 120 ports of the host's gateway address (the members).
  1. member create -> ACTIVE and member delete -> ACTIVE, each waited for, over N changes
     (default 50) on a load balancer with one HTTP listener and pool: p50 / p95.
  2. the full sequence a new user runs (load balancer, listener, pool, two members, an HTTP
     monitor; each created and waited for until ACTIVE) -> first request served through the
     VIP: p50 over 5 runs.
  3. four keep-alive clients send requests through the VIP while 100 members are added and
     then removed one at a time (each waited for): requests served and failed.
Bounded in count and time; only the benchmark's own bridges and namespaces are touched.
Usage: sudo python3 bench/member_changes.py [--changes N]
"""
import http.client, os, shutil, statistics, subprocess, sys, threading, time

import benchlib
from benchlib import get

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROCTA = os.path.join(ROOT, "target", "release", "rocta")
API = "http://127.0.0.1:19878"
SUBNET = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b"
GW = "198.19.202.1"
PORTS = list(range(18200, 18320))
CHANGES = int(sys.argv[sys.argv.index("--changes") + 1]) if "--changes" in sys.argv else 50
CONFIG = f"""[netns]
management_bridge = "rocta-cm"
management_cidr = "198.18.202.0/24"
host_port = "rocta-ch"
[[netns.networks]]
name = "cs"
cidr = "198.19.202.0/24"
network_id = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5a"
subnet_id = "{SUBNET}"
[health_manager]
bind_port = 15997
[controller_worker]
job_poll_interval_ms = 50
"""
procs = []


def call(method, path, body=None):
    return benchlib.call(API, method, path, body, admin=True)


def wait(what, f, within=60, step=0.002):
    benchlib.wait(what, f, within, step)


def active(lb):
    return call("GET", f"/v2/lbaas/loadbalancers/{lb}")["loadbalancer"]["provisioning_status"] == "ACTIVE"


def timed(method, path, body, lb):
    t = time.perf_counter()
    out = call(method, path, body)
    wait("ACTIVE", lambda: active(lb))
    return (time.perf_counter() - t) * 1000, out


def members_process():
    """One process answering HTTP/1.1 keep-alive on every port of PORTS."""
    code = f"""
import asyncio
async def handle(r, w):
    try:
        while True:
            head = await r.readuntil(b"\\r\\n\\r\\n")
            w.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
            await w.drain()
    except Exception:
        w.close()
async def main():
    for p in {PORTS}:
        await asyncio.start_server(handle, "{GW}", p)
    await asyncio.Event().wait()
asyncio.run(main())
"""
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def p(ms, q):
    ms = sorted(ms)
    return ms[min(len(ms) - 1, int(q * len(ms)))]


def cleanup(work):
    benchlib.cleanup(ROCTA, f"{work}/rocta.toml", procs, "198.18.202.")


def member_latency():
    lb = call("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": SUBNET,
              "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}}],
              "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                         "members": [{"address": GW, "protocol_port": PORTS[0]}]}]}})["loadbalancer"]
    wait("ACTIVE", lambda: active(lb["id"]))
    pool = lb["pools"][0]["id"]
    create, delete, ids = [], [], []
    for i in range(CHANGES):
        ms, m = timed("POST", f"/v2/lbaas/pools/{pool}/members",
                      {"member": {"address": GW, "protocol_port": PORTS[1 + i % (len(PORTS) - 1)]}}, lb["id"])
        create.append(ms)
        ids.append(m["member"]["id"])
    for mid in ids:
        ms, _ = timed("DELETE", f"/v2/lbaas/pools/{pool}/members/{mid}", None, lb["id"])
        delete.append(ms)
    print(f"member create -> ACTIVE: p50 {statistics.median(create):.1f} ms, p95 {p(create, 0.95):.1f} ms "
          f"over {len(create)} (target p50 <= 30 ms)")
    print(f"member delete -> ACTIVE: p50 {statistics.median(delete):.1f} ms, p95 {p(delete, 0.95):.1f} ms")
    return lb


def full_sequence():
    t = time.perf_counter()
    lb = call("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": SUBNET}})["loadbalancer"]
    wait("ACTIVE", lambda: active(lb["id"]))
    _, li = timed("POST", "/v2/lbaas/listeners",
                  {"listener": {"loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 8081}}, lb["id"])
    _, po = timed("POST", "/v2/lbaas/pools", {"pool": {"listener_id": li["listener"]["id"], "protocol": "HTTP",
                                                      "lb_algorithm": "ROUND_ROBIN"}}, lb["id"])
    pool = po["pool"]["id"]
    for port in PORTS[:2]:
        timed("POST", f"/v2/lbaas/pools/{pool}/members", {"member": {"address": GW, "protocol_port": port}}, lb["id"])
    timed("POST", "/v2/lbaas/healthmonitors", {"healthmonitor": {"pool_id": pool, "type": "HTTP", "delay": 1,
                                                                "timeout": 1, "max_retries": 1}}, lb["id"])
    wait("first request", lambda: get(f"http://{lb['vip_address']}:8081/", 0.5), step=0.005)
    ms = (time.perf_counter() - t) * 1000
    call("DELETE", f"/v2/lbaas/loadbalancers/{lb['id']}?cascade=true")
    wait("deleted", lambda: call("GET", f"/v2/lbaas/loadbalancers?id={lb['id']}")["loadbalancers"] == [], step=0.05)
    return ms


def churn_under_load(lb):
    pool = lb["pools"][0]["id"]
    host = lb["vip_address"]
    stop = time.time() + 300
    done = threading.Event()
    ok, failed = [0], [0]
    lock = threading.Lock()

    def client():
        c = http.client.HTTPConnection(host, 8080, timeout=5)
        while not done.is_set() and time.time() < stop:
            try:
                c.request("GET", "/")
                r = c.getresponse()
                r.read()
                good = r.status == 200
            except Exception:
                good = False
                c.close()
                c = http.client.HTTPConnection(host, 8080, timeout=5)
            with lock:
                (ok if good else failed)[0] += 1
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    ids = []
    for port in PORTS[1:101]:
        _, m = timed("POST", f"/v2/lbaas/pools/{pool}/members", {"member": {"address": GW, "protocol_port": port}},
                     lb["id"])
        ids.append(m["member"]["id"])
    for mid in ids:
        timed("DELETE", f"/v2/lbaas/pools/{pool}/members/{mid}", None, lb["id"])
    done.set()
    for t in threads:
        t.join()
    print(f"100 members added and removed under keep-alive load: {ok[0]} requests served, "
          f"{failed[0]} failed (target 0)")


def main():
    work, serve = benchlib.start_serve(ROCTA, CONFIG, "127.0.0.1:19878", ("haproxy", "nft"), "rocta-mc-", "198.18.202.")
    procs.append(serve)
    try:
        procs.append(members_process())
        time.sleep(0.5)
        lb = member_latency()
        runs = [full_sequence() for _ in range(5)]
        print(f"full sequence (LB, listener, pool, 2 members, monitor; each waited) -> first request: "
              f"p50 {statistics.median(runs):.0f} ms, max {max(runs):.0f} ms over 5 (target <= 500 ms)")
        churn_under_load(lb)
    finally:
        cleanup(work)
        shutil.rmtree(work, ignore_errors=True)


main()
