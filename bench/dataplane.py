#!/usr/bin/env python3
"""Data-plane benchmark of a rocta load balancer on real amphorae (issue 3 figures).

Starts `rocta serve` (release, default real drivers) on loopback, two rocta-bench backends,
creates a load balancer (HTTP listener, ROUND_ROBIN pool of the two backends, HTTP monitor) and
measures, side by side in one run with alternating rounds:
  - HTTP keep-alive and `Connection: close` throughput and HAProxy CPU us per request through
    rocta's HAProxy (per-request logging on: ring buffer), the same config with logging off,
    Octavia's config from ../shared/reference/dataplane (logging to a unix datagram socket read
    by a consumer, as rsyslog would), and straight to a backend;
  - create -> ACTIVE and full tree -> first successful request, p50/p95 over 20 runs;
  - failed requests during 20 reloads under keep-alive load; agent RSS.
wrk runs pinned to core 0, HAProxy, backends and the log consumer to core 1.
Loopback only; every run is bounded in time. Usage: python3 bench/dataplane.py
"""
import json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "..", "shared", "reference", "dataplane", "octavia-style-haproxy.cfg")
ROCTA = os.path.join(ROOT, "target", "release", "rocta")
BENCH = os.path.join(ROOT, "target", "release", "rocta-bench")
PUBLIC = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b"
API = "http://127.0.0.1:19876/v2/lbaas"
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECS = int(os.environ.get("SECS", "5"))
procs = []


def call(method, path, body=None):
    req = urllib.request.Request(API + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json", "X-Project-Id": "bench"})
    with urllib.request.urlopen(req, timeout=30) as r:
        t = r.read()
        return json.loads(t) if t else None


def wait_active(lb):
    t = time.time()
    while time.time() - t < 60:
        st = call("GET", f"/loadbalancers/{lb}")["loadbalancer"]["provisioning_status"]
        if st == "ACTIVE":
            return
        if st == "ERROR":
            sys.exit(f"load balancer {lb} went ERROR")
        time.sleep(0.002)
    sys.exit("timeout")


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except Exception:
        return False


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, round((len(v) - 1) * p))]


def start(cmd, cpu=None, **kw):
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    procs.append(p)
    return p


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total


def pids_of(pattern):
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


def wrk(url, close=False, secs=SECS):
    cmd = ["taskset", "-c", "0", "wrk", "-t1", "-c32", f"-d{secs}s", url]
    if close:
        cmd[5:5] = ["-H", "Connection: close"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    n = int(re.search(r"(\d+) requests in", out).group(1))
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = (sum(int(x) for x in errs.groups()) if errs else 0) + (int(non2xx.group(1)) if non2xx else 0)
    return rps, n, bad


def main():
    work = tempfile.mkdtemp(prefix="rocta-dp-")
    try:
        run(work)
    finally:
        for p in procs:
            p.kill()
        for pid in pids_of(work):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)


def run(work):
    start([BENCH, "backend", "--port", "18081", "--name", "one"], cpu=1)
    start([BENCH, "backend", "--port", "18082", "--name", "two"], cpu=1)
    start([ROCTA, "serve", "--data-dir", f"{work}/data", "--api-bind", "127.0.0.1:19876"])
    for _ in range(100):
        if http_ok("http://127.0.0.1:19876/"):
            break
        time.sleep(0.05)
    # create -> ACTIVE and full tree -> first request, 20 runs each
    create, tree = [], []
    for i in range(20):
        t = time.time()
        lb = call("POST", "/loadbalancers", {"loadbalancer": {"vip_subnet_id": PUBLIC}})["loadbalancer"]["id"]
        wait_active(lb)
        create.append((time.time() - t) * 1000)
        call("DELETE", f"/loadbalancers/{lb}")
    for i in range(20):
        t = time.time()
        body = {"loadbalancer": {"vip_subnet_id": PUBLIC, "listeners": [{"protocol": "HTTP", "protocol_port": 8080, "default_pool": {"name": "p"}}],
                "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                           "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2},
                           "members": [{"address": "127.0.0.1", "protocol_port": 18081}, {"address": "127.0.0.1", "protocol_port": 18082}]}]}}
        lb = call("POST", "/loadbalancers", body)["loadbalancer"]
        url = f"http://{lb['vip_address']}:8080/"
        while not http_ok(url):
            time.sleep(0.002)
            if time.time() - t > 30:
                sys.exit("no first request")
        tree.append((time.time() - t) * 1000)
        keep = lb
        if i < 19:
            wait_active(lb["id"])
            call("DELETE", f"/loadbalancers/{lb['id']}?cascade=true")
    print(f"lb_create_to_active (real amphora): n=20 p50={pct(create, .5):.0f}ms p95={pct(create, .95):.0f}ms")
    print(f"full_tree_to_first_request: n=20 p50={pct(tree, .5):.0f}ms p95={pct(tree, .95):.0f}ms")
    wait_active(keep["id"])
    time.sleep(1)
    rocta_url = f"http://{keep['vip_address']}:8080/"
    amp_dir = [d for d in os.listdir(f"{work}/data/amphorae")
               if os.path.exists(f"{work}/data/amphorae/{d}/lb/{keep['id']}/haproxy.cfg")][0]
    cfg_path = f"{work}/data/amphorae/{amp_dir}/lb/{keep['id']}/haproxy.cfg"
    rocta_pids = pids_of(f"haproxy -W -f {cfg_path}")
    for pid in rocta_pids:
        subprocess.run(["taskset", "-a", "-cp", "1", str(pid)], capture_output=True)
    # the same config with logging off, standalone on port 19091
    cfg = open(cfg_path).read()
    off = re.sub(r"\n    log ring@\S+ local0", "", cfg)
    off = re.sub(r"\nring [^\n]*\n(    [^\n]*\n)*", "\n", off)
    off = off.replace("    log global", "    no log")
    off = re.sub(r"\n    log-format [^\n]*", "", off)
    off = off.replace(f"{keep['vip_address']}:8080", "127.0.0.1:19091").replace("abns@rocta-", "abns@rocta-off-")
    os.makedirs(f"{work}/off", exist_ok=True)
    open(f"{work}/off/h.cfg", "w").write(off)
    start(["haproxy", "-W", "-f", f"{work}/off/h.cfg"], cpu=1)
    # Octavia's config with a log consumer on its datagram socket
    os.makedirs(f"{work}/oct", exist_ok=True)
    sock = f"{work}/oct/log.sock"
    consumer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    consumer.bind(sock)
    consumer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    os.sched_setaffinity(0, {1})
    def drain():
        while True:
            try:
                consumer.recv(65536)
            except OSError:
                return
    threading.Thread(target=drain, daemon=True).start()
    open(f"{work}/oct/h.cfg", "w").write(open(REF).read().replace("RUN_DIR", f"{work}/oct"))
    start(["haproxy", "-W", "-f", f"{work}/oct/h.cfg"], cpu=1)
    os.sched_setaffinity(0, {0, 1})
    time.sleep(1)
    variants = {
        "direct to a backend": ("http://127.0.0.1:18081/", []),
        "rocta LB, logging on (ring)": (rocta_url, rocta_pids),
        "rocta config, logging off": ("http://127.0.0.1:19091/", pids_of(f"haproxy -W -f {work}/off/h.cfg")),
        "Octavia-style, logging on": ("http://127.0.0.1:18080/", pids_of(f"haproxy -W -f {work}/oct/h.cfg")),
    }
    results = {k: {"ka": [], "close": [], "us": []} for k in variants}
    for r in range(ROUNDS):
        for name, (url, pids) in variants.items():
            for mode in ("ka", "close"):
                c0 = cpu_ticks(pids)
                rps, n, bad = wrk(url, close=(mode == "close"))
                c1 = cpu_ticks(pids)
                results[name][mode].append(rps)
                if mode == "ka" and pids:
                    results[name]["us"].append((c1 - c0) / os.sysconf("SC_CLK_TCK") * 1e6 / max(n, 1))
    direct = statistics.median(results["direct to a backend"]["ka"])
    octa = statistics.median(results["Octavia-style, logging on"]["ka"])
    print(f"throughput, wrk -t1 -c32, {ROUNDS} alternating rounds of {SECS}s, medians:")
    for name, r in results.items():
        ka, cl = statistics.median(r["ka"]), statistics.median(r["close"])
        us = f"{statistics.median(r['us']):.1f} us/req" if r["us"] else "-"
        print(f"  {name:32s} keep-alive {ka:9.0f} req/s ({ka / direct:.2f} of direct, {ka / octa:.2f} x Octavia)  close {cl:8.0f} req/s  HAProxy CPU {us}")
    # 20 reloads under keep-alive load
    res = {}
    t = threading.Thread(target=lambda: res.update(zip(("rps", "n", "bad"), wrk(rocta_url, secs=12))))
    t.start()
    time.sleep(1)
    pool = keep["pools"][0]["id"]
    member = keep["pools"][0]["members"][0]["id"]
    for i in range(20):
        call("PUT", f"/pools/{pool}/members/{member}", {"member": {"weight": 1 + i % 2}})
        wait_active(keep["id"])
        time.sleep(0.3)
    t.join()
    print(f"reloads under keep-alive load: 20 reloads, {res['n']} requests, {res['bad']} failed")
    agent = pids_of(f"amphora-agent --config {work}/data/amphorae/{amp_dir}")
    rss = open(f"/proc/{agent[0]}/status").read().split("VmRSS:")[1].split()[0]
    print(f"agent RSS: {int(rss) / 1024:.1f} MB")


main()
