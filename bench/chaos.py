#!/usr/bin/env python3
"""Chaos suite: kill -9 rocta's processes at random while clients create, change and delete
load balancers, then prove that nothing is stuck, lost, leaked or resurrected.

Two modes, run one after the other by default:
- roles: `rocta api`, two `rocta worker`s, `rocta health-manager` and `rocta housekeeping` as
  separate processes on one data directory with the noop drivers; a random one is killed and
  restarted, again and again.
- serve: `rocta serve` on the real drivers (an agent and HAProxy per amphora on this host);
  either `rocta serve` or a random amphora's whole process group (agent and HAProxy) is killed.

At the end, with every process up again: 0 objects PENDING_*, 0 unfinished jobs, the SQLite
database's integrity_check "ok", no 5xx answer while the API was up, no deleted load balancer
come back, and no leaked driver resource (noop records, VIP allocations, amphora directories,
agent and HAProxy processes) against the live objects; then everything is deleted and nothing
may remain.

    python3 bench/chaos.py [--mode roles|serve|both] [--kills N] [--seconds S] [--seed N]

Exits non-zero with the list of findings if any check fails. Needs a built `rocta`
(target/release or target/debug, or --bin) and, for serve, HAProxy. Traffic goes only to
127.0.0.1; every process it starts is ended.
"""
import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBNET = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b"
PENDING = ("PENDING_CREATE", "PENDING_UPDATE", "PENDING_DELETE")
P = argparse.ArgumentParser(description=__doc__.split("\n")[0])
P.add_argument("--mode", choices=["roles", "serve", "both"], default="both")
P.add_argument("--kills", type=int, default=300, help="kills per mode")
P.add_argument("--seconds", type=float, default=600, help="longest chaos phase per mode")
P.add_argument("--clients", type=int, default=4)
P.add_argument("--seed", type=int, default=None)
P.add_argument("--bin", default=None)
P.add_argument("--aimed", type=float, default=0.0,
               help="share of restarts that start the process with ROCTA_CRASH_AT set to one "
                    "of the points between two writes (a binary built with the fault-injection "
                    "features: cargo build --bin rocta --features "
                    "rocta-worker/fault-injection,rocta-drivers/fault-injection)")
P.add_argument("--points", default=None,
               help="comma-separated crash points to aim at instead of all of them")
P.add_argument("--compat", action="store_true",
               help="leave out config keys newer than the hardening fixes, to run the suite "
                    "against an older binary and show the faults it finds there")
ARGS = P.parse_args()


def find_bin():
    if ARGS.bin:
        return ARGS.bin
    for p in ("target/release/rocta", "target/debug/rocta"):
        if os.path.exists(os.path.join(ROOT, p)):
            return os.path.join(ROOT, p)
    sys.exit("no rocta binary: cargo build --release --bin rocta (or --bin PATH)")


BIN = find_bin()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# The crash points a restarted process may be aimed at (rocta-flow's flow:step:when and the
# drivers' driver:point): each sits between a side effect and its record.
WORKER_POINTS = [
    "create_loadbalancer:mark_lb_active:executed",
    "update_loadbalancer:mark_lb_active:executed",
    "child:finalize:executed",
    "delete_loadbalancer:mark_lb_deleted:executed",
    "create_loadbalancer:create_amphora:executed",
    "delete_loadbalancer:delete_amphorae:executed",
    "create_loadbalancer:lb_error_on_revert:revert",
]
AIM = {
    "api": ["driver:allocate_vip"],
    "worker": WORKER_POINTS,
    "serve": ["driver:allocate_vip", "driver:spawn_agent"] + WORKER_POINTS,
}


def visible(d):
    """Entries of a directory but the temporary files (dot-files) of interrupted writes."""
    return [n for n in os.listdir(d) if not n.startswith(".")]


class Api:
    """A tiny Octavia v2 client (admin under noauth)."""

    def __init__(self, url):
        self.url = url

    def req(self, method, path, body=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Content-Type": "application/json", "X-Project-Id": "chaos"})
        try:
            with urllib.request.urlopen(r, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, OSError):
            return None, None  # the API is down (killed): not an answer


class Run:
    """One chaos run: processes, clients, a killer, the final checks."""

    def __init__(self, mode):
        self.mode = mode
        self.work = tempfile.mkdtemp(prefix=f"rocta-chaos-{mode}-")
        os.chmod(self.work, 0o755)
        self.data = os.path.join(self.work, "data")
        self.port = free_port()
        self.api = Api(f"http://127.0.0.1:{self.port}")
        self.procs = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.findings = []
        self.five_xx = []
        self.kills = 0
        self.kill_log = {}
        self.aimed_log = {}
        self.aims = {}
        self.requests = 0
        self.gone = set()  # load balancers a client saw deleted (404 after its 204)
        self.created = 0
        self.config = os.path.join(self.work, "rocta.toml")
        with open(self.config, "w") as f:
            f.write(
                "[controller_worker]\njob_lease_seconds = 2\njob_poll_interval_ms = 50\n"
                "[health_manager]\nbind_port = %d\nheartbeat_interval = 0.5\n"
                "heartbeat_timeout = 4.0\nhealth_check_interval = 0.5\n"
                "[house_keeping]\ncleanup_interval = 0.5\n%s"
                % (free_port(), "" if ARGS.compat else "vip_allocation_grace = 3.0\n"))
        self.roles = (["api", "worker-1", "worker-2", "health-manager", "housekeeping"]
                      if mode == "roles" else ["serve"])

    # ---- processes ----
    def start(self, name, aim=None):
        role = "worker" if name.startswith("worker") else name
        cmd = [BIN, role, "--config", self.config, "--data-dir", self.data]
        if role in ("api", "serve"):
            cmd += ["--api-bind", f"127.0.0.1:{self.port}"]
        # serve: amphorae on this host's loopback (members are loopback servers).
        cmd += ["--drivers", "noop" if self.mode == "roles" else "local"]
        log = open(os.path.join(self.work, f"{name}.log"), "ab")
        env = dict(os.environ, RUST_LOG="warn")
        env.pop("ROCTA_CRASH_AT", None)
        if aim:
            env["ROCTA_CRASH_AT"] = aim
        p = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        self.procs[name] = p
        if role in ("api", "serve"):
            self.wait_api(p)

    def wait_api(self, proc, within=20):
        t = time.time()
        while time.time() - t < within:
            # An aimed process may reach its crash point before this sees it answer.
            if self.api.req("GET", "/")[0] is not None or proc.poll() is not None:
                return
            time.sleep(0.02)
        self.findings.append("the API did not come back within %ss" % within)

    def kill(self, name):
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait()

    def agents(self):
        """pid -> (amphora id, process group) of every agent and HAProxy under this run."""
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
                pgid = os.getpgid(int(pid))
            except (OSError, ProcessLookupError):
                continue
            text = b" ".join(args).decode(errors="replace")
            if self.data not in text or not ("amphora-agent" in text or "haproxy" in text):
                continue
            amp = text.split(os.path.join(self.data, "amphorae") + "/", 1)[-1][:36]
            out[int(pid)] = (amp, pgid, "haproxy" if "haproxy" in args[0].decode(errors="replace") else "agent")
        return out

    def killer(self, kills, seconds):
        t0 = time.time()
        while not self.stop.is_set() and self.kills < kills and time.time() - t0 < seconds:
            time.sleep(random.uniform(0.1, 0.6))
            with self.lock:
                if self.mode == "serve" and random.random() < 0.4:
                    groups = {g for (_, g, kind) in self.agents().values() if kind == "agent"}
                    if not groups:
                        continue
                    g = random.choice(sorted(groups))
                    try:
                        os.killpg(g, signal.SIGKILL)
                    except ProcessLookupError:
                        continue
                    target = "amphora"
                else:
                    target = random.choice(self.roles)
                    self.kill(target)
                    time.sleep(random.uniform(0, 0.2))
                    self.restart(target)
                self.kills += 1
                self.kill_log[target] = self.kill_log.get(target, 0) + 1
                # A process aimed at a crash point that reached it has ended by itself.
                for name, p in list(self.procs.items()):
                    if p.poll() is not None:
                        # Reached its crash point; or ended unaimed, which is reported too.
                        what = self.aims.get(name) or f"{name} exited unaimed ({p.returncode})"
                        self.aimed_log[what] = self.aimed_log.get(what, 0) + 1
                        self.kills += 1
                        self.restart(name)

    def restart(self, name):
        """Starts `name` again, aimed at a random crash point with probability --aimed."""
        role = "worker" if name.startswith("worker") else name
        points = AIM.get(role, [])
        if ARGS.points:
            points = [p for p in points if p in ARGS.points.split(",")]
        aim = random.choice(points) if points and random.random() < ARGS.aimed else None
        self.aims[name] = aim
        self.start(name, aim)

    # ---- clients ----
    def call(self, method, path, body=None):
        s, b = self.api.req(method, path, body)
        self.requests += 1
        if s is not None and s >= 500:
            self.five_xx.append((method, path, s, str(b)[:200]))
        return s, b

    def wait_settled(self, lb, within=30):
        t = time.time()
        while time.time() - t < within and not self.stop.is_set():
            s, b = self.call("GET", f"/v2/lbaas/loadbalancers/{lb}")
            if s == 404:
                return None
            if s == 200 and b["loadbalancer"]["provisioning_status"] not in PENDING:
                return b["loadbalancer"]["provisioning_status"]
            time.sleep(0.05)
        return "TIMEOUT"

    def client(self, n):
        rng = random.Random(n if ARGS.seed is None else ARGS.seed + n)
        while not self.stop.is_set():
            body = {"loadbalancer": {"vip_subnet_id": SUBNET, "name": f"c{n}"}}
            if rng.random() < 0.5:
                port = rng.randrange(1024, 60000)
                body["loadbalancer"]["listeners"] = [{
                    "protocol": "HTTP" if self.mode == "roles" else "TCP",
                    "protocol_port": port,
                    "default_pool": {"protocol": "HTTP" if self.mode == "roles" else "TCP",
                                     "lb_algorithm": "ROUND_ROBIN",
                                     "members": [{"address": "127.0.0.1", "protocol_port": 9}]}}]
            s, b = self.call("POST", "/v2/lbaas/loadbalancers", body)
            if s != 201:
                time.sleep(0.05)
                continue
            self.created += 1
            lb = b["loadbalancer"]["id"]
            state = self.wait_settled(lb)
            if state == "ACTIVE" and rng.random() < 0.5:
                self.call("PUT", f"/v2/lbaas/loadbalancers/{lb}", {"loadbalancer": {"name": "u"}})
                state = self.wait_settled(lb)
            if state == "ACTIVE" and rng.random() < 0.3:
                # Left alive: the next kills hit it while it serves.
                continue
            for _ in range(50):
                s, _ = self.call("DELETE", f"/v2/lbaas/loadbalancers/{lb}?cascade=true")
                if s in (204, 404) or self.stop.is_set():
                    break
                time.sleep(0.1)
            if s == 204 and self.wait_settled(lb) is None:
                self.gone.add(lb)

    # ---- checks ----
    def db(self):
        return sqlite3.connect(os.path.join(self.data, "rocta.db"), timeout=10)

    def pending(self):
        out = []
        for path, key in [("/v2/lbaas/loadbalancers", "loadbalancers"),
                          ("/v2/lbaas/listeners", "listeners"), ("/v2/lbaas/pools", "pools"),
                          ("/v2/lbaas/members", None), ("/v2/lbaas/healthmonitors", "healthmonitors")]:
            if key is None:
                continue
            s, b = self.api.req("GET", path)
            if s != 200:
                return ["the API does not answer"]
            out += [f"{key} {o['id']} {o['provisioning_status']}" for o in b[key]
                    if o["provisioning_status"] in PENDING]
        return out

    def unfinished_jobs(self):
        with self.db() as c:
            return c.execute("SELECT name, state FROM jobs WHERE state IN "
                             "('pending', 'running', 'reverting')").fetchall()

    def live(self):
        with self.db() as c:
            lbs = {r[0] for r in c.execute(
                "SELECT id FROM load_balancers WHERE provisioning_status != 'DELETED'")}
            amps = {r[0] for r in c.execute(
                "SELECT id FROM amphorae WHERE provisioning_status != 'DELETED'")}
        return lbs, amps

    def leaks(self):
        """Driver resources without a live owner."""
        lbs, amps = self.live()
        out = []
        if self.mode == "roles":
            root = os.path.join(self.data, "noop")
            for port in visible(os.path.join(root, "vips")):
                owner = open(os.path.join(root, "vips", port)).read().strip()
                if owner not in lbs:
                    out.append(f"VIP {port} of {owner}, no such load balancer")
            n_compute = len(visible(os.path.join(root, "compute")))
            if n_compute != len(amps):
                out.append(f"{n_compute} compute records for {len(amps)} live amphorae")
            certs = set(visible(os.path.join(root, "certs")))
            if certs != amps:
                out.append(f"certificates {sorted(certs ^ amps)[:5]} differ from amphorae")
        else:
            vips = os.path.join(self.data, "loopback", "vips")
            for ip in visible(vips):
                owner = open(os.path.join(vips, ip)).read().strip()
                if owner not in lbs:
                    out.append(f"VIP {ip} of {owner}, no such load balancer")
            root = os.path.join(self.data, "amphorae")
            dirs = {d for d in visible(root) if d != "mgmt"}
            for d in sorted(dirs - amps):
                out.append(f"amphora directory {d} without a live amphora")
            per_amp = {}
            for pid, (amp, _, kind) in self.agents().items():
                if amp not in amps:
                    out.append(f"{kind} {pid} of amphora {amp}, not a live amphora")
                if kind == "agent":
                    per_amp[amp] = per_amp.get(amp, 0) + 1
            out += [f"{n} agents for amphora {a}" for a, n in per_amp.items() if n > 1]
        return out

    def settle(self, within=90):
        t = time.time()
        while time.time() - t < within:
            if not self.pending() and not self.unfinished_jobs():
                return True
            time.sleep(0.5)
        return False

    def run(self, kills, seconds):
        random.seed(ARGS.seed)
        t0 = time.time()
        for r in self.roles:
            self.restart(r)
        clients = [threading.Thread(target=self.client, args=(i,), daemon=True)
                   for i in range(ARGS.clients)]
        for c in clients:
            c.start()
        self.killer(kills, seconds)
        self.stop.set()
        for c in clients:
            c.join(timeout=60)
        chaos = time.time() - t0
        # Every process up and unaimed (a killed amphora is left to the health manager's
        # failover).
        with self.lock:
            for name, p in list(self.procs.items()):
                if p.poll() is not None or self.aims.get(name):
                    if p.poll() is None:
                        self.kill(name)
                    self.aims[name] = None
                    self.start(name)
        if not self.settle():
            self.findings.append(f"not settled: pending {self.pending()[:5]}, "
                                 f"jobs {self.unfinished_jobs()[:5]}")
        # Past the VIP grace period and a purge cycle, so abandoned allocations are released.
        time.sleep(5)
        self.settle(30)
        with self.db() as c:
            integrity = c.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            self.findings.append(f"integrity_check: {integrity}")
        if self.five_xx:
            self.findings.append(f"{len(self.five_xx)} 5xx answers: {self.five_xx[:3]}")
        back = []
        for lb in sorted(self.gone):
            s, b = self.api.req("GET", f"/v2/lbaas/loadbalancers/{lb}")
            if s != 404:
                back.append(f"{lb} ({b['loadbalancer']['provisioning_status'] if s == 200 else s})")
        if back:
            self.findings.append(f"{len(back)} deleted load balancers came back: {back[:5]}")
        leaked = self.leaks()
        if leaked:
            self.findings.append(f"{len(leaked)} leaks: {leaked[:8]}")
        # Everything deleted: nothing may remain.
        lbs, _ = self.live()
        for lb in lbs:
            for _ in range(100):
                s, _ = self.api.req("DELETE", f"/v2/lbaas/loadbalancers/{lb}?cascade=true")
                if s in (204, 404):
                    break
                time.sleep(0.1)
        if not self.settle():
            self.findings.append("deletes did not settle")
        time.sleep(1)
        lbs, amps = self.live()
        if lbs or amps:
            self.findings.append(f"after deleting all: {len(lbs)} load balancers, "
                                 f"{len(amps)} amphorae live")
        leaked = self.leaks()
        if leaked:
            self.findings.append(f"after deleting all, {len(leaked)} leaks: {leaked[:8]}")
        return {
            "mode": self.mode, "kills": self.kills, "by_target": self.kill_log,
            "crash_points_reached": self.aimed_log,
            "chaos_seconds": round(chaos, 1), "requests": self.requests,
            "load_balancers_created": self.created, "deleted_and_checked": len(self.gone),
            "five_xx": len(self.five_xx), "findings": self.findings,
        }

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for pid, (_, pgid, _) in self.agents().items():
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["rm", "-rf", self.work])


def main():
    modes = ["roles", "serve"] if ARGS.mode == "both" else [ARGS.mode]
    failed = False
    for mode in modes:
        run = Run(mode)
        try:
            result = run.run(ARGS.kills, ARGS.seconds)
        finally:
            run.close()
        print(json.dumps(result))
        if result["findings"]:
            failed = True
            for f in result["findings"]:
                print(f"chaos {mode}: {f}")
    print("chaos: " + ("FAILED" if failed else "ok, nothing stuck, lost, leaked or resurrected"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
