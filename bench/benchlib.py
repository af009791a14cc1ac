"""Helpers the netns benchmarks share: the API client, probes, waiting, and the clean-up of
the benchmark's own amphorae and networks."""
import json, os, signal, subprocess, sys, time, urllib.request


def call(api, method, path, body=None, admin=False):
    """One request to rocta's API as project `bench` (admin when asked); the decoded answer."""
    headers = {"Content-Type": "application/json", "X-Project-Id": "bench"}
    if admin:
        headers["X-Roles"] = "admin"
    req = urllib.request.Request(api + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        t = r.read()
        return json.loads(t) if t else None


def get(url, timeout):
    """Whether a GET of `url` answers 200 within `timeout` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def wait(what, f, within=60, step=0.02):
    """Polls `f` every `step` seconds; exits the benchmark after `within` seconds."""
    t = time.time()
    while not f():
        if time.time() - t > within:
            sys.exit(f"timeout: {what}")
        time.sleep(step)


def pids_in(ns):
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cleanup(rocta, config, procs, mgmt_prefix):
    """Ends `procs`, every amphora namespace on the management subnet `mgmt_prefix` (e.g.
    "198.18.201."), and the networks of `config` (`rocta network teardown`)."""
    for p in procs:
        p.kill()
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for ns in [l.split()[0] for l in out.splitlines() if l.startswith("amphora-")]:
        addrs = subprocess.run(["ip", "-n", ns, "-4", "-o", "addr"], capture_output=True, text=True).stdout
        if mgmt_prefix in addrs:
            for pid in pids_in(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            subprocess.run(["ip", "netns", "del", ns])
    subprocess.run([rocta, "network", "teardown", "--config", config], stdout=subprocess.DEVNULL)
