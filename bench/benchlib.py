"""Helpers the netns benchmarks share: the API client, probes, waiting, and the clean-up of
the benchmark's own amphorae and networks."""
import json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request


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
    "198.18.201.") or of an amphora in the data directory beside `config` (one still being
    plugged has no address yet), and the networks of `config` (`rocta network teardown`)."""
    for p in procs:
        p.kill()
    amphorae = os.path.join(os.path.dirname(config), "data", "amphorae")
    ours = {"amphora-" + a.replace("-", "")[:8] for a in os.listdir(amphorae)} if os.path.isdir(amphorae) else set()
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for ns in [l.split()[0] for l in out.splitlines() if l.startswith("amphora-")]:
        addrs = subprocess.run(["ip", "-n", ns, "-4", "-o", "addr"], capture_output=True, text=True).stdout
        if mgmt_prefix in addrs or ns in ours:
            for pid in pids_in(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            subprocess.run(["ip", "netns", "del", ns])
    subprocess.run([rocta, "network", "teardown", "--config", config], stdout=subprocess.DEVNULL)


def start_serve(rocta, config, api_bind, tools, prefix, mgmt_prefix, cpu=None):
    """Checks root and `tools`, writes `config` into a new work directory and starts `rocta
    serve --drivers netns` there with its API on `api_bind` (pinned to core `cpu` if given,
    with everything it starts: agents, HAProxy); waits for the API. Returns the work directory
    and the process; cleans up after itself (amphorae on `mgmt_prefix`, the networks) if the
    API never answers."""
    if os.geteuid() != 0:
        sys.exit("run as root (the netns drivers make namespaces, bridges and nftables rules)")
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"missing {tool}: apt-get install -y {' '.join(tools)}")
    work = tempfile.mkdtemp(prefix=prefix)
    open(f"{work}/rocta.toml", "w").write(config)
    os.chmod(work, 0o755)
    pinned = ["taskset", "-c", str(cpu)] if cpu is not None else []
    p = subprocess.Popen(pinned + [rocta, "serve", "--drivers", "netns", "--config", f"{work}/rocta.toml",
                                   "--data-dir", f"{work}/data", "--api-bind", api_bind],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait("API", lambda: get(f"http://{api_bind}/", 0.5), within=20, step=0.05)
    except SystemExit:
        cleanup(rocta, f"{work}/rocta.toml", [p], mgmt_prefix)
        shutil.rmtree(work, ignore_errors=True)
        raise
    return work, p


def cpu_ticks(pids):
    """User + system clock ticks used so far by `pids` (those gone count nothing)."""
    total = 0
    for pid in pids:
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total


def pids_of(pattern):
    """Pids whose command line matches `pattern` (pgrep -f)."""
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


def pin(pid, cpus):
    """Moves every thread of `pid` to `cpus`."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cpus)


def ref_namespace(ns, bridge, veth, cidr):
    """A namespace `ns` for standalone HAProxies, plugged into `bridge` by a veth (`veth` on
    the host side, eth1 inside) with address `cidr`, so they cross the same veths and bridge as
    an amphora. Removed by `remove_ref_namespace`."""
    for cmd in (["ip", "netns", "add", ns],
                ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth1", "netns", ns],
                ["ip", "link", "set", veth, "master", bridge, "up"],
                ["ip", "-n", ns, "addr", "add", cidr, "dev", "eth1"],
                ["ip", "-n", ns, "link", "set", "eth1", "up"],
                ["ip", "-n", ns, "link", "set", "lo", "up"]):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    time.sleep(0.3)


def remove_ref_namespace(ns, veth):
    for pid in pids_in(ns):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "link", "del", veth], stderr=subprocess.DEVNULL)


def rsyslogd(rs, cpu):
    """rsyslogd (pinned to core `cpu`) logging as an Octavia amphora does, from the socket
    `rs`/log.sock to `rs`/haproxy.log: the image's rules (Octavia's
    elements/amphora-agent/static/etc/rsyslog.d/55-octavia-socket.conf and
    elements/haproxy-octavia/post-install.d/20-setup-haproxy-log, which writes
    49-haproxy.conf). Returns the process once the socket exists."""
    os.makedirs(rs, exist_ok=True)
    open(f"{rs}/rsyslog.conf", "w").write(
        f'global(workDirectory="{rs}")\n'
        'module(load="imuxsock" SysSock.Use="off")\n'
        f'input(type="imuxsock" Socket="{rs}/log.sock" CreatePath="on")\n'
        # the file template of the Ubuntu images amphorae are built from (the cheaper one)
        f"if $programname startswith 'haproxy' then {rs}/haproxy.log;RSYSLOG_TraditionalFileFormat\n"
        "& stop\n")
    p = subprocess.Popen(["taskset", "-c", str(cpu), "rsyslogd", "-n", "-f", f"{rs}/rsyslog.conf",
                          "-i", f"{rs}/rsyslogd.pid"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait("rsyslogd's socket", lambda: os.path.exists(f"{rs}/log.sock"), within=5, step=0.05)
    return p


def logging_off(cfg):
    """A rocta HAProxy configuration with its per-request logging taken out (no ring, no log
    lines, `no log`)."""
    off = re.sub(r"\n    log ring@\S+ local\d( notice)?", "", cfg)
    off = re.sub(r"\nring [^\n]*\n(    [^\n]*\n)*", "\n", off)
    off = off.replace("    log global", "    no log")
    return re.sub(r"\n    log-format [^\n]*", "", off)
