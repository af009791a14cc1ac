#!/usr/bin/env python3
"""TLS benchmark (issue 16): a TERMINATED_HTTPS listener through rocta's rendering against
Octavia's rendering of the same listener, side by side in one run, alternating rounds.

Placement as `bench/dataplane.py --netns`: `rocta serve --drivers netns` (release build; root)
on networks of its own (bridges rocta-tm / rocta-tls, 198.18.203.0/24 and 198.19.203.0/24,
torn down at the end); the amphora is a namespace with its VIP on a veth into the tenant
bridge. The standalone HAProxies (Octavia's rendering, rocta's with logging off) run in a
namespace of their own (rocta-tls-ref) plugged into the same bridge, so every variant crosses
the same veths and bridge. Core 1 runs only what an amphora runs (`rocta serve` with its agent
and HAProxy, the standalone HAProxies, rsyslogd); core 0 the clients and the two backends
(rocta-bench backend on the host's gateway address).

The listener: TLS 1.3, a certificate of the tenant's (RSA 2048 by default, KEY=ec for ECDSA
P-256) signed by a CA of the benchmark's, Octavia's API defaults (tls_ciphers OWASP Suite B,
tls_versions TLSv1.2 and TLSv1.3, alpn_protocols h2, http/1.1, http/1.0), a ROUND_ROBIN HTTP
pool of the two backends with an HTTP monitor. Octavia's configuration is its own templater's
output (bench/fixtures/octavia-haproxy-tls.cfg, made by render_octavia_tls.py there) with the
benchmark's addresses and paths put in.

Variants: rocta's load balancer as delivered (logging on: ring -> agent -> traffic.log), the
same configuration with logging off, Octavia's with logging as on an amphora (rsyslogd writing
a file), and Octavia's with `connection_logging = False`.
Per variant and round (SECS seconds each, one client pinned to core 0):
  - full handshakes: `rocta-bench tls`, 32 connections at a time, each a TLS 1.3 handshake
    without resumption and one GET with `Connection: close`;
  - resumed handshakes: the same, each connection resuming its client's previous session;
  - keep-alive HTTP/1.1 over TLS: `wrk -t1 -c32`;
  - HTTP/2 (ALPN h2): `h2load -t1 -c32 -m10`;
and HAProxy's CPU time (plus its log consumer's) per operation from /proc.
Bounded in time; only the benchmark's own bridges and namespaces are touched.
Usage: sudo python3 bench/tls.py (after `cargo build --release --bin rocta --bin rocta-bench`;
apt-get install -y haproxy wrk rsyslog nghttp2-client openssl). ROUNDS, SECS, KEY in the
environment change the defaults (5, 5, rsa).
"""
import os, re, shutil, statistics, subprocess, sys

import benchlib
from benchlib import cpu_ticks, pids_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROCTA = os.path.join(ROOT, "target", "release", "rocta")
BENCH = os.path.join(ROOT, "target", "release", "rocta-bench")
FIXTURE = os.path.join(ROOT, "bench", "fixtures", "octavia-haproxy-tls.cfg")
API_BIND = "127.0.0.1:19879"
API = f"http://{API_BIND}"
SUBNET = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b"
GW = "198.19.203.1"
REF_NS, REF_VETH, REF_IP = "rocta-tls-ref", "rocta-tref", "198.19.203.250"
NAME = "bench.example"
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SECS = int(os.environ.get("SECS", "5"))
KEY = os.environ.get("KEY", "rsa")
CONFIG = f"""[netns]
management_bridge = "rocta-tm"
management_cidr = "198.18.203.0/24"
host_port = "rocta-th"
[[netns.networks]]
name = "tls"
cidr = "198.19.203.0/24"
network_id = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5a"
subnet_id = "{SUBNET}"
[health_manager]
bind_port = 15996
"""
TOOLS = ("haproxy", "wrk", "rsyslogd", "h2load", "openssl", "taskset")
TESTS = ("full", "resumed", "h1", "h2")
procs = []


def start(cmd, cpu):
    p = subprocess.Popen(["taskset", "-c", str(cpu)] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    return p


def in_ref(cmd):
    return ["ip", "netns", "exec", REF_NS] + cmd


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def certificates(d):
    """A CA of the benchmark's and the tenant's certificate for NAME signed by it; returns
    (the CA's PEM, the listener's PEM: certificate then key)."""
    os.makedirs(d)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=rocta bench CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    key = ["-newkey", "rsa:2048"] if KEY == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl("req", "-new", *key, "-nodes", "-subj", f"/CN={NAME}", "-keyout", f"{d}/web.key", "-out", f"{d}/web.csr")
    open(f"{d}/san", "w").write(f"subjectAltName=DNS:{NAME}\n")
    openssl("x509", "-req", "-in", f"{d}/web.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{d}/san", "-out", f"{d}/web.crt")
    open(f"{d}/web.pem", "w").write(open(f"{d}/web.crt").read() + open(f"{d}/web.key").read())
    return f"{d}/ca.pem", f"{d}/web.pem"


def octavia_config(d, port, pem, logging):
    """Octavia's rendering with the benchmark's addresses and paths: the VIP, the crt-list
    (Octavia writes one line, the listener's PEM), the rsyslog socket, the stats socket, the
    members. Left as rendered but for: `daemon` (the benchmark keeps HAProxy in the
    foreground, -W), maxconn 50000 -> 7600 (this machine's RLIMIT_NOFILE is 20000; rocta's
    renderer caps at the same 7600), the monitor's expected code (the sample's 418 -> 200).
    Without `logging`, as Octavia renders `connection_logging = False`: `no log`."""
    os.makedirs(d, exist_ok=True)
    open(f"{d}/crt.list", "w").write(f"{pem}\n")
    cfg = open(FIXTURE).read()
    for old, new in (("    daemon\n", ""), ("maxconn 50000", "maxconn 7600"), ("fullconn 50000", "fullconn 7600"),
                     ("rstatus 418", "rstatus 200"), ("/run/rsyslog/octavia/log", f"{d}/log.sock"),
                     ("/var/lib/octavia/sample_loadbalancer_id_1.sock", f"{d}/haproxy.sock"),
                     ("/var/lib/octavia/certs/sample_loadbalancer_id_1/sample_listener_id_1.pem", f"{d}/crt.list"),
                     ("10.0.0.2:443", f"{REF_IP}:{port}"), ("10.0.0.99:82", f"{GW}:18481"),
                     ("10.0.0.98:82", f"{GW}:18482")):
        if old not in cfg:
            sys.exit(f"the fixture no longer has {old!r}")
        cfg = cfg.replace(old, new)
    if not logging:
        cfg = cfg.replace("    log global\n", "    no log\n")
    open(f"{d}/h.cfg", "w").write(cfg)
    start(in_ref(["haproxy", "-W", "-f", f"{d}/h.cfg"]), 1)
    return f"{d}/h.cfg"


def measure(test, target, ca):
    """One run of `test` against `target` (host:port): (operations/s, operations, failed)."""
    host = target.split(":")[0]
    if test in ("full", "resumed"):
        cmd = [BENCH, "tls", "--target", target, "--name", NAME, "--ca", ca, "--conns", "32", "--secs", str(SECS)]
        out = subprocess.run(["taskset", "-c", "0"] + cmd + (["--resume"] if test == "resumed" else []),
                             capture_output=True, text=True).stdout
        m = re.search(r"ok=(\d+) rate=([\d.]+)/s failed=(\d+) full=(\d+) resumed=(\d+)", out)
        if not m:
            sys.exit(f"rocta-bench tls: {out}")
        ok, rate, failed, resumed = int(m[1]), float(m[2]), int(m[3]), int(m[5])
        # A resumed run that fell back to full handshakes would measure the wrong thing: only
        # each client's first connection may be full.
        if test == "resumed" and ok - resumed > 32:
            sys.exit(f"only {resumed} of {ok} handshakes resumed")
        if test == "full" and resumed:
            sys.exit(f"{resumed} handshakes resumed in the full run")
        return rate, ok, failed
    if test == "h1":
        out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c32", f"-d{SECS}s", f"https://{target}/"],
                             capture_output=True, text=True).stdout
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
        n = int(re.search(r"(\d+) requests in", out)[1])
        errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        bad = (sum(int(x) for x in errs.groups()) if errs else 0) + (int(non2xx[1]) if non2xx else 0)
        return rate, n, bad
    out = subprocess.run(["taskset", "-c", "0", "h2load", "-t1", "-c32", "-m10", "-D", str(SECS),
                          f"https://{target}/"], capture_output=True, text=True).stdout
    if "Application protocol: h2" not in out:
        sys.exit(f"h2load did not negotiate h2 with {host}: {out}")
    rate = float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)[1])
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    return rate, int(m[1]), int(m[2]) + int(m[3]) + int(m[4])


def main():
    work, server = benchlib.start_serve(ROCTA, CONFIG, API_BIND, TOOLS, "rocta-tls-", "198.18.203.", cpu=1)
    procs.append(server)
    try:
        run(work)
    finally:
        benchlib.remove_ref_namespace(REF_NS, REF_VETH)
        benchlib.cleanup(ROCTA, f"{work}/rocta.toml", procs, "198.18.203.")
        if os.environ.get("KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(work):
    for port, name in ((18481, "one"), (18482, "two")):
        start([BENCH, "backend", "--port", str(port), "--bind", GW, "--name", name], 0)
    benchlib.ref_namespace(REF_NS, "rocta-tls", REF_VETH, f"{REF_IP}/24")
    ca, pem = certificates(f"{work}/certs")
    shutil.copy(pem, f"{work}/data/certificates/bench.pem")
    body = {"loadbalancer": {"vip_subnet_id": SUBNET, "listeners": [
        {"protocol": "TERMINATED_HTTPS", "protocol_port": 443, "default_tls_container_ref": "bench.pem",
         "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "healthmonitor": {"type": "HTTP", "delay": 30, "timeout": 30, "max_retries": 2,
                                     "url_path": "/index.html"},
                   "members": [{"address": GW, "protocol_port": 18481}, {"address": GW, "protocol_port": 18482}]}]}}
    lb = benchlib.call(API, "POST", "/v2/lbaas/loadbalancers", body)["loadbalancer"]
    benchlib.wait("ACTIVE", lambda: benchlib.call(API, "GET", f"/v2/lbaas/loadbalancers/{lb['id']}")
                  ["loadbalancer"]["provisioning_status"] == "ACTIVE")
    vip = lb["vip_address"]
    listener = lb["listeners"][0]["id"]
    shown = benchlib.call(API, "GET", f"/v2/lbaas/listeners/{listener}")["listener"]
    print(f"listener defaults: tls_versions={shown['tls_versions']} alpn={shown['alpn_protocols']}")
    print(f"  tls_ciphers={shown['tls_ciphers']}")
    cfg_path = [p for p in (f"{work}/data/amphorae/{d}/lb/{lb['id']}/haproxy.cfg"
                            for d in os.listdir(f"{work}/data/amphorae")) if os.path.exists(p)][0]
    agent = pids_of(f"amphora-agent --config {os.path.dirname(os.path.dirname(os.path.dirname(cfg_path)))}")
    # rocta's configuration with logging off, standalone in the reference namespace
    off = benchlib.logging_off(open(cfg_path).read())
    off = off.replace(f"{vip}:443", f"{REF_IP}:19443").replace("abns@rocta-", "abns@rocta-off-")
    os.makedirs(f"{work}/off")
    open(f"{work}/off/h.cfg", "w").write(off)
    start(in_ref(["haproxy", "-W", "-f", f"{work}/off/h.cfg"]), 1)
    rs = f"{work}/octr"
    procs.append(benchlib.rsyslogd(rs, 1))
    oct_on = octavia_config(rs, 18443, pem, logging=True)
    oct_off = octavia_config(f"{work}/octoff", 18444, pem, logging=False)
    # name: (host:port, HAProxy's command line, log consumer pids)
    variants = {
        "rocta, logging on": (f"{vip}:443", f"haproxy -W -f {cfg_path}", agent),
        "rocta, logging off": (f"{REF_IP}:19443", f"^haproxy -W -f {work}/off/h.cfg", []),
        "Octavia, rsyslogd": (f"{REF_IP}:18443", f"^haproxy -W -f {oct_on}", pids_of(f"rsyslogd -n -f {rs}")),
        "Octavia, logging off": (f"{REF_IP}:18444", f"^haproxy -W -f {oct_off}", []),
    }
    for name, (target, cmdline, logger) in variants.items():
        benchlib.wait(f"{name} serving", lambda: negotiated(target, ca), within=20, step=0.2)
        print(f"{name}: negotiated {negotiated(target, ca)}")
        pids = pids_of(cmdline)
        if len(pids) != 2:
            sys.exit(f"{name}: expected a HAProxy master and worker, found {pids}")
        variants[name] = (target, pids, logger)
    hz = os.sysconf("SC_CLK_TCK")
    results = {(v, t): {"rate": [], "us": [], "log": [], "bad": 0} for v in variants for t in TESTS}
    for r in range(ROUNDS):
        for name, (target, pids, logger) in variants.items():
            for test in TESTS:
                c0, l0 = cpu_ticks(pids), cpu_ticks(logger)
                rate, n, bad = measure(test, target, ca)
                c1, l1 = cpu_ticks(pids), cpu_ticks(logger)
                res = results[(name, test)]
                res["rate"].append(rate)
                res["us"].append((c1 - c0) / hz * 1e6 / max(n, 1))
                res["log"].append((l1 - l0) / hz * 1e6 / max(n, 1))
                res["bad"] += bad
        print(f"round {r + 1}/{ROUNDS} done", flush=True)
    traffic = f"{os.path.dirname(cfg_path)}/traffic.log"
    logged = {"rocta": sum(os.path.getsize(f) for f in (traffic, traffic + ".1") if os.path.exists(f)),
              "rsyslogd": os.path.getsize(f"{rs}/haproxy.log")}
    print(f"log output (bytes): {logged}")
    if not all(logged.values()):
        sys.exit("a log path carried nothing")
    report(variants, results)


def negotiated(target, ca):
    """What one second of connections to `target` negotiated (suite/group), None if any failed."""
    out = subprocess.run([BENCH, "tls", "--target", target, "--name", NAME, "--ca", ca, "--conns", "1", "--secs", "1"],
                         capture_output=True, text=True).stdout
    m = re.search(r" ok=[1-9]\d* .*failed=0 .*negotiated=(\S+)", out)
    return m[1] if m else None


def report(variants, results):
    labels = {"full": "full handshakes/s", "resumed": "resumed handshakes/s",
              "h1": "keep-alive HTTP/1.1 req/s", "h2": "HTTP/2 req/s"}
    print(f"KEY={KEY}, {ROUNDS} alternating rounds of {SECS}s, medians; CPU = HAProxy (+ log consumer) us per operation;")
    print("x Oct = ratio to Octavia's rendering logging through rsyslogd / with logging off")
    for test in TESTS:
        print(labels[test])
        oct_on = statistics.median(results[("Octavia, rsyslogd", test)]["rate"])
        oct_off = statistics.median(results[("Octavia, logging off", test)]["rate"])
        for name in variants:
            r = results[(name, test)]
            rate = statistics.median(r["rate"])
            log = f" + {statistics.median(r['log']):.1f}" if variants[name][2] else ""
            print(f"  {name:22s} {rate:9.0f}  ({rate / oct_on:.2f} / {rate / oct_off:.2f} x Oct)"
                  f"  CPU {statistics.median(r['us']):.1f}{log} us  failed {r['bad']}")


main()
