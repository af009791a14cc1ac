"""Helpers the netns benchmarks share: the API client, probes, waiting, and the clean-up of
the benchmark's own amphorae and networks."""
import json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request


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


def start_serve(rocta, config, api_bind, tools, prefix, mgmt_prefix):
    """Checks root and `tools`, writes `config` into a new work directory and starts `rocta
    serve --drivers netns` there with its API on `api_bind`; waits for the API. Returns the
    work directory and the process; cleans up after itself (amphorae on `mgmt_prefix`, the
    networks) if the API never answers."""
    if os.geteuid() != 0:
        sys.exit("run as root (the netns drivers make namespaces, bridges and nftables rules)")
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"missing {tool}: apt-get install -y {' '.join(tools)}")
    work = tempfile.mkdtemp(prefix=prefix)
    open(f"{work}/rocta.toml", "w").write(config)
    p = subprocess.Popen([rocta, "serve", "--drivers", "netns", "--config", f"{work}/rocta.toml",
                          "--data-dir", f"{work}/data", "--api-bind", api_bind],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait("API", lambda: get(f"http://{api_bind}/", 0.5), within=20, step=0.05)
    except SystemExit:
        cleanup(rocta, f"{work}/rocta.toml", [p], mgmt_prefix)
        shutil.rmtree(work, ignore_errors=True)
        raise
    return work, p
