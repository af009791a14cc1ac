#!/usr/bin/env python3
"""Data-plane benchmark of a rocta load balancer on real amphorae (issue 3 figures).

Starts `rocta serve` (release, default real drivers) on loopback, two rocta-bench backends,
creates a load balancer (HTTP listener, ROUND_ROBIN pool of the two backends, HTTP monitor) and
measures, side by side in one run with alternating rounds:
  - HTTP keep-alive and `Connection: close` throughput and HAProxy CPU us per request through
    rocta's HAProxy (per-request logging on: ring buffer drained by the agent into a file), the
    same config with logging off, Octavia's config (bench/fixtures, from the reference) logging
    the way an amphora does (rsyslogd with the amphora image's rsyslog rules: the imuxsock
    socket HAProxy logs to, and `$programname startswith 'haproxy'` written to a file), the same
    Octavia config logging to a socket that a consumer reads and discards (the lighter stand-in
    the reference names), and straight to a backend;
  - create -> ACTIVE and full tree -> first successful request, p50/p95 over 20 runs;
  - failed requests during 20 reloads under keep-alive load; agent RSS.
Everything on the amphora side runs pinned to core 1 from its start (`rocta serve` with its
amphora agents and their HAProxy, Octavia's HAProxy, rsyslogd, the discarding consumer), so every
HAProxy starts with one thread and every log consumer's CPU competes with its HAProxy as on a
one-vCPU amphora; wrk runs pinned to core 0. Each round measures every variant in two placements
of the backends:
  - "reference": the backends on core 1 with HAProxy (the reference's "server side on the other
    core"), so each request also pays for the backends and the context switches between them and
    HAProxy on the same core;
  - "amphora": the backends on core 0 with wrk, so core 1 carries only what runs on an amphora
    (members are other hosts) and core 0 plays the clients and the members.
Needs haproxy, wrk and rsyslog (apt-get install -y haproxy wrk rsyslog).
Loopback only; every run is bounded in time. Usage: python3 bench/dataplane.py

With --netns (root; issue 15) rocta runs on its netns drivers, on networks of the benchmark's own
(bridges rocta-bm / rocta-bench, 198.18.200.0/24 and 198.19.200.0/24, torn down at the end): the
amphora is a network namespace, and the standalone HAProxies (Octavia's config, rocta's with
logging off) run in a namespace of their own plugged into the same tenant bridge by a veth, so
every variant crosses the same veths and bridge; the backends listen on the host's gateway
address. Only the "amphora" placement is measured (core 1 runs only what the amphorae run).
Create -> ACTIVE is measured cold and, after a restart with two spare amphorae, from a spare.
"""
import json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request

import benchlib
from benchlib import cpu_ticks, pids_of, pin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "bench", "fixtures", "octavia-style-haproxy.cfg")
ROCTA = os.path.join(ROOT, "target", "release", "rocta")
BENCH = os.path.join(ROOT, "target", "release", "rocta-bench")
PUBLIC = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b"
API = "http://127.0.0.1:19876/v2/lbaas"
ROUNDS = int(os.environ.get("ROUNDS", "5"))
NETNS = "--netns" in sys.argv
# The --netns placement's networks and the namespace of the standalone HAProxies.
NET_CONFIG = """[netns]
management_bridge = "rocta-bm"
management_cidr = "198.18.200.0/24"
host_port = "rocta-bh"
[[netns.networks]]
name = "bench"
cidr = "198.19.200.0/24"
network_id = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5a"
subnet_id = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b"
[health_manager]
bind_port = 15999
"""
GW = "198.19.200.1" if NETNS else "127.0.0.1"
# SHIP=TCP or SHIP=UDP (with --netns): the agents also ship every request log line to a real
# rsyslogd on the host's gateway address (core 0), as `[amphora_agent] tenant_log_targets`.
SHIP = os.environ.get("SHIP", "")
SHIP_PORT = 15514
if SHIP:
    NET_CONFIG += (f'[amphora_agent]\ntenant_log_targets = ["{GW}:{SHIP_PORT}"]\n'
                   f'log_protocol = "{SHIP}"\n')
REF_NS, REF_IP = "rocta-bench-ref", "198.19.200.250"
HOST = REF_IP if NETNS else "127.0.0.1"
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


def http_ok(url, timeout=1):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, round((len(v) - 1) * p))]


def start(cmd, cpu=None, stderr=subprocess.DEVNULL, **kw):
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, **kw)
    procs.append(p)
    return p


def cpu_busy():
    """Busy jiffies of cores 0 and 1 (from /proc/stat)."""
    out = []
    for line in open("/proc/stat"):
        if line.startswith(("cpu0 ", "cpu1 ")):
            f = [int(x) for x in line.split()[1:]]
            out.append(sum(f) - f[3] - f[4])
    return out


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
    missing = [t for t in ("haproxy", "wrk", "rsyslogd", "taskset") if not shutil.which(t)]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install -y haproxy wrk rsyslog util-linux")
    work = tempfile.mkdtemp(prefix="rocta-dp-")
    # Octavia's HAProxy drops to `user nobody`, which must reach its log socket in here
    os.chmod(work, 0o755)
    open(f"{work}/rocta.toml", "w").write(NET_CONFIG if NETNS else "")
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
        if NETNS:
            # After rocta is gone: it would go on booting spares.
            netns_cleanup(work)
        if os.environ.get("KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def netns_cleanup(work):
    """Ends the reference namespace and the amphorae, then removes the networks."""
    benchlib.remove_ref_namespace(REF_NS, "rocta-bref")
    benchlib.cleanup(ROCTA, f"{work}/rocta.toml", [], "198.18.200.")


def shipping_receiver(work):
    """rsyslogd on core 0 receiving the shipped lines on the gateway address (there once
    `rocta serve` made the networks) into a file; returns the file's path."""
    d = f"{work}/shipped"
    os.makedirs(d)
    mod = "imtcp" if SHIP == "TCP" else "imudp"
    open(f"{d}/rsyslog.conf", "w").write(
        f'global(workDirectory="{d}")\nmodule(load="{mod}")\n'
        f'input(type="{mod}" address="{GW}" port="{SHIP_PORT}")\n'
        f'*.* action(type="omfile" file="{d}/shipped.log")\n')
    start(["rsyslogd", "-n", "-f", f"{d}/rsyslog.conf", "-i", f"{d}/rsyslogd.pid"], cpu=0)
    return f"{d}/shipped.log"


def serve(work, extra=""):
    """Starts `rocta serve` (pinned to core 1) and waits for its API."""
    cfg = f"{work}/serve.toml"
    open(cfg, "w").write((NET_CONFIG if NETNS else "") + extra)
    p = start([ROCTA, "serve", "--drivers", "netns" if NETNS else "local", "--config", cfg,
               "--data-dir", f"{work}/data", "--api-bind", "127.0.0.1:19876"], cpu=1,
              stderr=open(f"{work}/serve.err", "ab"))
    for _ in range(200):
        if http_ok("http://127.0.0.1:19876/"):
            return p
        time.sleep(0.05)
    sys.exit("rocta serve did not start")


def no_first_request(work, lb):
    """Says what it can of a load balancer whose first request never came, then stops."""
    print(f"no first request through {lb['vip_address']} within 30 s")
    for path in (f"/loadbalancers/{lb['id']}", f"/loadbalancers/{lb['id']}/status"):
        try:
            print(json.dumps(call("GET", path)))
        except Exception as e:
            print(f"{path}: {e}")
    for cmd in (["ip", "neigh", "show", lb["vip_address"]],
                ["curl", "-sv", "-m", "2", f"http://{lb['vip_address']}:8080/"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        print(" ".join(cmd), "->", r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    print("rocta serve's log (last lines):")
    print("".join(open(f"{work}/serve.err", errors="replace").readlines()[-40:]))
    sys.exit("no first request")


def in_ref(cmd):
    """`cmd` in the reference amphora's namespace (--netns), else as it is."""
    return ["ip", "netns", "exec", REF_NS] + cmd if NETNS else cmd


def create_from_spares(work, server):
    """Restarts rocta with two spare amphorae and measures create -> ACTIVE from a spare."""
    server.kill()
    server.wait()
    server = serve(work, "[house_keeping]\nspare_amphora_pool_size = 2\nspare_check_interval = 0.2\n")
    ms = []
    for i in range(10):
        t0 = time.time()
        while True:
            req = urllib.request.Request("http://127.0.0.1:19876/v2/octavia/amphorae?status=READY",
                                         headers={"X-Project-Id": "bench", "X-Roles": "admin"})
            with urllib.request.urlopen(req, timeout=10) as r:
                amps = json.loads(r.read())["amphorae"]
            if amps:
                break
            if time.time() - t0 > 30:
                sys.exit("no spare became READY")
            time.sleep(0.05)
        t = time.time()
        lb = call("POST", "/loadbalancers", {"loadbalancer": {"vip_subnet_id": PUBLIC}})["loadbalancer"]["id"]
        wait_active(lb)
        ms.append((time.time() - t) * 1000)
        call("DELETE", f"/loadbalancers/{lb}")
    print(f"lb_create_to_active from a spare: n=10 p50={pct(ms, .5):.0f}ms p95={pct(ms, .95):.0f}ms")
    return server


def run(work):
    receiver = None
    backends = [start([BENCH, "backend", "--port", "18081", "--bind", GW, "--name", "one"], cpu=1),
                start([BENCH, "backend", "--port", "18082", "--bind", GW, "--name", "two"], cpu=1)] if not NETNS else []
    server = serve(work)
    if SHIP:
        receiver = shipping_receiver(work)
    if NETNS:
        # The networks exist now: the backends listen on the host's gateway address, and the
        # standalone HAProxies get a namespace plugged into the same bridge.
        backends = [start([BENCH, "backend", "--port", "18081", "--bind", GW, "--name", "one"], cpu=1),
                    start([BENCH, "backend", "--port", "18082", "--bind", GW, "--name", "two"], cpu=1)]
        benchlib.ref_namespace(REF_NS, "rocta-bench", "rocta-bref", f"{REF_IP}/24")
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
                           "members": [{"address": GW, "protocol_port": 18081}, {"address": GW, "protocol_port": 18082}]}]}}
        lb = call("POST", "/loadbalancers", body)["loadbalancer"]
        url = f"http://{lb['vip_address']}:8080/"
        # A short timeout: before the VIP is plugged a SYN gets no answer at all.
        while not http_ok(url, timeout=0.05):
            time.sleep(0.002)
            if time.time() - t > 30:
                no_first_request(work, lb)
        tree.append((time.time() - t) * 1000)
        keep = lb
        if i < 19:
            wait_active(lb["id"])
            call("DELETE", f"/loadbalancers/{lb['id']}?cascade=true")
    print(f"lb_create_to_active (real amphora): n=20 p50={pct(create, .5):.0f}ms p95={pct(create, .95):.0f}ms")
    print(f"full_tree_to_first_request: n=20 p50={pct(tree, .5):.0f}ms p95={pct(tree, .95):.0f}ms")
    if NETNS:
        # The spare pool boots amphorae of its own: measured last, after the data plane.
        pass
    wait_active(keep["id"])
    time.sleep(1)
    rocta_url = f"http://{keep['vip_address']}:8080/"
    amp_dir = [d for d in os.listdir(f"{work}/data/amphorae")
               if os.path.exists(f"{work}/data/amphorae/{d}/lb/{keep['id']}/haproxy.cfg")][0]
    cfg_path = f"{work}/data/amphorae/{amp_dir}/lb/{keep['id']}/haproxy.cfg"
    rocta_pids = pids_of(f"haproxy -W -f {cfg_path}")
    agent = pids_of(f"amphora-agent --config {work}/data/amphorae/{amp_dir}")
    # the same config with logging off, standalone on port 19091
    cfg = open(cfg_path).read()
    off = benchlib.logging_off(cfg)
    off = off.replace(f"{keep['vip_address']}:8080", f"{HOST}:19091").replace("abns@rocta-", "abns@rocta-off-")
    os.makedirs(f"{work}/off", exist_ok=True)
    open(f"{work}/off/h.cfg", "w").write(off)
    start(in_ref(["haproxy", "-W", "-f", f"{work}/off/h.cfg"]), cpu=1)
    # Octavia's config logging as an amphora does: rsyslogd with the image's rules
    rs = f"{work}/octr"
    procs.append(benchlib.rsyslogd(rs, 1))
    ref = open(REF).read()
    ref = ref.replace("bind 127.0.0.1:", f"bind {HOST}:").replace(" 127.0.0.1:1808", f" {GW}:1808")
    open(f"{rs}/h.cfg", "w").write(ref.replace("RUN_DIR", rs).replace(":18080", ":18090").replace(":18088", ":18098"))
    start(in_ref(["haproxy", "-W", "-f", f"{rs}/h.cfg"]), cpu=1)
    # the same config with a consumer that reads and discards each datagram
    os.makedirs(f"{work}/oct", exist_ok=True)
    sock = f"{work}/oct/log.sock"
    consumer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    consumer.bind(sock)
    os.chmod(sock, 0o666)
    consumer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    os.sched_setaffinity(0, {1})
    received = [0]

    def drain():
        while True:
            try:
                consumer.recv(65536)
                received[0] += 1
            except OSError:
                return
    threading.Thread(target=drain, daemon=True).start()
    open(f"{work}/oct/h.cfg", "w").write(ref.replace("RUN_DIR", f"{work}/oct"))
    start(in_ref(["haproxy", "-W", "-f", f"{work}/oct/h.cfg"]), cpu=1)
    os.sched_setaffinity(0, {0, 1})
    time.sleep(1)
    # name: (url, HAProxy pids, log consumer pids)
    variants = {
        "direct to a backend": (f"http://{GW}:18081/", [], []),
        "rocta LB, logging on": (rocta_url, rocta_pids, agent),
        "rocta config, logging off": (f"http://{HOST}:19091/", pids_of(f"^haproxy -W -f {work}/off/h.cfg"), []),
        "Octavia, rsyslogd to a file": (f"http://{HOST}:18090/", pids_of(f"^haproxy -W -f {rs}/h.cfg"), pids_of(f"rsyslogd -n -f {rs}")),
        "Octavia, discarding consumer": (f"http://{HOST}:18080/", pids_of(f"^haproxy -W -f {work}/oct/h.cfg"), [os.getpid()]),
    }
    hz = os.sysconf("SC_CLK_TCK")
    threads = {name: [open(f"/proc/{pid}/status").read().split("Threads:")[1].split()[0] for pid in v[1]]
               for name, v in variants.items() if v[1]}
    print(f"HAProxy threads (master, worker): {threads}")
    placements = {"amphora": {0}} if NETNS else {"reference": {1}, "amphora": {0}}
    results = {(pl, k): {"ka": [], "close": [], "us": [], "log": [], "busy": []} for pl in placements for k in variants}
    for r in range(ROUNDS):
        for pl, cpus in placements.items():
            for b in backends:
                pin(b.pid, cpus)
            time.sleep(0.2)
            for name, (url, pids, logger) in variants.items():
                for mode in ("ka", "close"):
                    c0, l0, b0, t0 = cpu_ticks(pids), cpu_ticks(logger), cpu_busy(), time.time()
                    rps, n, bad = wrk(url, close=(mode == "close"))
                    c1, l1, b1, t1 = cpu_ticks(pids), cpu_ticks(logger), cpu_busy(), time.time()
                    res = results[(pl, name)]
                    res[mode].append(rps)
                    if mode == "ka":
                        res["busy"].append([(y - x) / hz / (t1 - t0) * 100 for x, y in zip(b0, b1)])
                        if pids:
                            res["us"].append((c1 - c0) / hz * 1e6 / max(n, 1))
                            res["log"].append((l1 - l0) / hz * 1e6 / max(n, 1))
    for b in backends:
        pin(b.pid, {1})
    # every log path must really have carried the lines (a HAProxy that cannot reach its log
    # socket logs nothing and would look cheap)
    traffic = f"{os.path.dirname(cfg_path)}/traffic.log"
    logged = {"rocta": sum(os.path.getsize(f) for f in (traffic, traffic + ".1") if os.path.exists(f)),
              "rsyslogd": os.path.getsize(f"{rs}/haproxy.log"), "discarding consumer (datagrams)": received[0]}
    if SHIP:
        logged[f"shipped over {SHIP} to rsyslogd"] = os.path.getsize(receiver) if os.path.exists(receiver) else 0
    print(f"log output: {logged}")
    if not all(logged.values()):
        sys.exit("a log path carried nothing")
    print(f"throughput, wrk -t1 -c32, {ROUNDS} alternating rounds of {SECS}s, medians;")
    print("  x Oct = ratio to Octavia logging through rsyslogd / to Octavia with the discarding consumer;")
    print("  busy = core 0 / core 1 busy % during the keep-alive runs")
    for pl in placements:
        print(f"placement {pl}: backends on core {min(placements[pl])}")
        direct = statistics.median(results[(pl, "direct to a backend")]["ka"])
        octr = statistics.median(results[(pl, "Octavia, rsyslogd to a file")]["ka"])
        octd = statistics.median(results[(pl, "Octavia, discarding consumer")]["ka"])
        for name in variants:
            r = results[(pl, name)]
            ka, cl = statistics.median(r["ka"]), statistics.median(r["close"])
            us = f"{statistics.median(r['us']):.1f}" if r["us"] else "-"
            log = f"{statistics.median(r['log']):.1f}" if r["log"] and variants[name][2] else "-"
            busy = "/".join(f"{statistics.median(b[c] for b in r['busy']):.0f}" for c in (0, 1))
            print(f"  {name:29s} keep-alive {ka:7.0f} req/s ({ka / direct:.2f} of direct, {ka / octr:.2f} / {ka / octd:.2f} x Oct)"
                  f"  close {cl:6.0f} req/s  CPU us/req: HAProxy {us}, log consumer {log}  busy {busy}")
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
    rss = open(f"/proc/{agent[0]}/status").read().split("VmRSS:")[1].split()[0]
    print(f"agent RSS: {int(rss) / 1024:.1f} MB")
    if NETNS:
        create_from_spares(work, server)


main()
