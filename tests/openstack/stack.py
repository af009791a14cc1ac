#!/usr/bin/env python3
"""Real OpenStack services for rocta's tests: Keystone, Placement, Glance, Neutron, Nova (fake
virt driver) and Barbican on 127.0.0.1, on the local MariaDB and RabbitMQ.

Usage: stack.py DIR   (with the Python of the venv scripts/openstack made for Keystone, Neutron
and Barbican; the Nova/Placement/Glance venv is found beside it, see MASTER/STABLE below)

Makes DIR (configs, logs, state), databases `ros<hex>_<service>` on MariaDB (root, no
password, 127.0.0.1:3306) and a RabbitMQ vhost `ros<hex>` (guest), syncs every database, serves
each API under gunicorn through a WSGI wrapper (their WSGI modules parse sys.argv), starts
nova-conductor, nova-scheduler and nova-compute with Nova's fake virt driver (its subclass
`rocta_virt.ConfigDriveFakeDriver`, which keeps each server's config drive as files under
`<DIR>/nova/instances/<uuid>/config-drive/`), then makes what the tests use:
  identities (domain Default, every password "<user>-pass"): admin (admin of project admin);
    rocta, the load balancer service's user (admin and service in project service); nova,
    neutron, glance, placement, barbican (the same); alice (member of lb-a), bob (member
    of lb-b)
  flavor `amphora` (1 vCPU, 1 GiB, 2 GB), a raw image `amphora-x64-haproxy` tagged `amphora`
  networks: `lb-mgmt-net` (198.19.251.0/24), `public` (shared, 198.19.252.0/24 and, for
    additional VIPs, `public-2` 198.19.250.0/24), `private` of lb-a (198.19.253.0/24;
    198.19.250-253 are outside what the netns tests use)
and prints one line "READY <json>" with the endpoints and those ids. Serves until its
standard input closes (the process that started it ended), then stops every process, drops the
databases and the vhost and removes DIR.
"""
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

DIR = os.path.abspath(sys.argv[1])
MASTER = os.path.dirname(os.path.dirname(sys.executable))
STABLE = os.environ.get("ROCTA_OS_STABLE", "/opt/rocta-os-2026.1")
TAG = "ros" + secrets.token_hex(4)
MYSQL = "mysql+pymysql://root@127.0.0.1:3306"
RABBIT = f"rabbit://guest:guest@127.0.0.1:5672/{TAG}"
REGION = "RegionOne"
SERVICES = ("keystone", "placement", "glance", "neutron", "nova", "barbican")
DATABASES = ("keystone", "placement", "glance", "neutron", "nova_api", "nova", "nova_cell0",
             "barbican")
procs = []  # (name, Popen)
started = time.monotonic()


def log(msg):
    print(f"[stack {time.monotonic() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = {s: free_port() for s in SERVICES}
URL = {s: f"http://127.0.0.1:{PORT[s]}" for s in SERVICES}
KEYSTONE = URL["keystone"] + "/v3"


def path(*p):
    return os.path.join(DIR, *p)


def write(rel, text):
    os.makedirs(os.path.dirname(path(rel)), exist_ok=True)
    with open(path(rel), "w") as f:
        f.write(text)
    return path(rel)


def sql(statement):
    import pymysql
    c = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        c.cursor().execute(statement)
    finally:
        c.close()


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, stdout=subprocess.DEVNULL)


def run(name, argv, env=None):
    """Runs a setup command to its end; its output goes to logs/<name>.out."""
    with open(path("logs", name + ".out"), "ab") as out:
        r = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0:
        with open(path("logs", name + ".out")) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"{name} failed ({' '.join(argv)}):\n{tail}")


def start(name, argv, env=None):
    out = open(path("logs", name + ".out"), "ab")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env, start_new_session=True, cwd=path(name.split("-")[0]))
    procs.append((name, p))
    return p


def authtoken(user):
    return f"""[keystone_authtoken]
www_authenticate_uri = {KEYSTONE}
auth_url = {KEYSTONE}
auth_type = password
username = {user}
password = {user}-pass
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = {REGION}
service_token_roles_required = true
"""


def auth_section(section, user="rocta"):
    return f"""[{section}]
auth_url = {KEYSTONE}
auth_type = password
username = {user}
password = {user}-pass
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = {REGION}
"""


def wsgi_wrapper(service, argv, body):
    """A module gunicorn loads: sets sys.argv for oslo.config, then imports the application."""
    return write(f"{service}/wsgi_{service}.py", f"""import os, sys
sys.argv = {argv!r}
{body}
""")


def gunicorn(service, venv, env=None):
    return start(service, [
        os.path.join(venv, "bin", "gunicorn"), "--bind", f"127.0.0.1:{PORT[service]}",
        "--workers", "1", "--threads", "8", "--timeout", "300", "--graceful-timeout", "3",
        "--chdir", path(service), f"wsgi_{service}:application"], env=env)


def configure():
    for s in SERVICES:
        os.makedirs(path(s), exist_ok=True)
    os.makedirs(path("logs"), exist_ok=True)
    fernet = path("keystone", "fernet-keys")
    cred = path("keystone", "credential-keys")
    write("keystone/keystone.conf", f"""[DEFAULT]
log_file = {path('logs', 'keystone.log')}
[database]
connection = {MYSQL}/{TAG}_keystone
[token]
provider = fernet
expiration = 7200
[fernet_tokens]
key_repository = {fernet}
[fernet_receipts]
key_repository = {fernet}
[credential]
key_repository = {cred}
""")
    wsgi_wrapper("keystone", ["keystone"], f"""os.environ["OS_KEYSTONE_CONFIG_FILES"] = {path('keystone', 'keystone.conf')!r}
from keystone.wsgi.api import application""")

    write("placement/placement.conf", f"""[DEFAULT]
log_file = {path('logs', 'placement.log')}
[placement_database]
connection = {MYSQL}/{TAG}_placement
[api]
auth_strategy = keystone
{authtoken('placement')}""")
    wsgi_wrapper("placement", ["placement-api"], f"""os.environ["OS_PLACEMENT_CONFIG_DIR"] = {path('placement')!r}
from placement.wsgi.api import application""")

    write("glance/glance-api.conf", f"""[DEFAULT]
log_file = {path('logs', 'glance.log')}
enabled_backends = fs:file
[database]
connection = {MYSQL}/{TAG}_glance
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {path('glance', 'images')}
[os_glance_staging_store]
filesystem_store_datadir = {path('glance', 'staging')}
[os_glance_tasks_store]
filesystem_store_datadir = {path('glance', 'tasks')}
[paste_deploy]
flavor = keystone
{authtoken('glance')}""")
    shutil.copy(os.path.join(STABLE, "etc", "glance", "glance-api-paste.ini"), path("glance"))
    wsgi_wrapper("glance", ["glance-api"], f"""os.environ["OS_GLANCE_CONFIG_DIR"] = {path('glance')!r}
from glance.wsgi.api import application""")

    shutil.copy(os.path.join(MASTER, "etc", "neutron", "api-paste.ini"), path("neutron"))
    write("neutron/neutron.conf", f"""[DEFAULT]
log_file = {path('logs', 'neutron.log')}
core_plugin = ml2
service_plugins = qos
auth_strategy = keystone
transport_url = {RABBIT}
api_paste_config = {path('neutron', 'api-paste.ini')}
state_path = {path('neutron', 'state')}
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
[database]
connection = {MYSQL}/{TAG}_neutron
[oslo_concurrency]
lock_path = {path('neutron', 'lock')}
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = rocta_bind_everything
extension_drivers = port_security,qos
[ml2_type_vxlan]
vni_ranges = 1:1000
[ml2_type_flat]
flat_networks = *
[securitygroup]
enable_security_group = true
{authtoken('neutron')}""")
    wsgi_wrapper("neutron", ["neutron-api", "--config-file", path("neutron", "neutron.conf")],
                 "from neutron.wsgi.api import application")

    shutil.copy(os.path.join(STABLE, "etc", "nova", "api-paste.ini"), path("nova"))
    write("nova/nova.conf", f"""[DEFAULT]
log_file = {path('logs', 'nova.log')}
compute_driver = rocta_virt.ConfigDriveFakeDriver
transport_url = {RABBIT}
host = rocta-os-compute
my_ip = 127.0.0.1
state_path = {path('nova', 'state')}
instances_path = {path('nova', 'instances')}
enabled_apis = osapi_compute
[wsgi]
api_paste_config = {path('nova', 'api-paste.ini')}
[api]
auth_strategy = keystone
[api_database]
connection = {MYSQL}/{TAG}_nova_api
[database]
connection = {MYSQL}/{TAG}_nova
[oslo_concurrency]
lock_path = {path('nova', 'lock')}
[scheduler]
discover_hosts_in_cells_interval = 2
workers = 1
[conductor]
workers = 1
[quota]
instances = -1
cores = -1
ram = -1
server_groups = -1
server_group_members = -1
[vnc]
enabled = false
[oslo_messaging_notifications]
driver = noop
{authtoken('nova')}
{auth_section('placement', 'nova')}
{auth_section('neutron', 'nova')}
{auth_section('service_user', 'nova')}send_service_user_token = true
""")
    wsgi_wrapper("nova", ["nova-api"], f"""os.environ["OS_NOVA_CONFIG_DIR"] = {path('nova')!r}
from nova.wsgi.osapi_compute import application""")

    kek = base64.b64encode(secrets.token_bytes(32)).decode()
    # Where oslo.config finds it by default too ($HOME/.barbican/, HOME set for gunicorn):
    # Barbican parses its configuration again, without arguments, when it loads its crypto
    # plugin.
    write("barbican/.barbican/barbican.conf", f"""[DEFAULT]
log_file = {path('logs', 'barbican.log')}
host_href = {URL['barbican']}
db_auto_create = true
[database]
connection = {MYSQL}/{TAG}_barbican
[secretstore]
enabled_secretstore_plugins = store_crypto
[crypto]
enabled_crypto_plugins = simple_crypto
[simple_crypto_plugin]
kek = {kek}
[queue]
enable = false
{authtoken('barbican')}""")
    shutil.copy(os.path.join(MASTER, "etc", "barbican", "barbican-api-paste.ini"),
                path("barbican"))
    wsgi_wrapper("barbican", ["barbican-api"], f"""from barbican.common import config
config.CONF(args=["--config-file", {path('barbican', '.barbican', 'barbican.conf')!r}], project="barbican")
from paste import deploy
application = deploy.loadapp("config:" + {path('barbican', 'barbican-api-paste.ini')!r})""")


def sync():
    """Every service's schema, in parallel (one thread each)."""
    ks = os.path.join(MASTER, "bin", "keystone-manage")
    kconf = ["--config-file", path("keystone", "keystone.conf")]
    nm = os.path.join(STABLE, "bin", "nova-manage")
    nconf = ["--config-file", path("nova", "nova.conf")]
    steps = {
        "keystone": [
            [ks, *kconf, "db_sync"],
            [ks, *kconf, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
            [ks, *kconf, "credential_setup", "--keystone-user", "root", "--keystone-group",
             "root"],
            [ks, *kconf, "bootstrap", "--bootstrap-password", "admin-pass",
             "--bootstrap-public-url", KEYSTONE, "--bootstrap-internal-url", KEYSTONE,
             "--bootstrap-admin-url", KEYSTONE, "--bootstrap-region-id", REGION],
        ],
        "placement": [[os.path.join(STABLE, "bin", "placement-manage"), "--config-file",
                       path("placement", "placement.conf"), "db", "sync"]],
        "glance": [[os.path.join(STABLE, "bin", "glance-manage"), "--config-file",
                    path("glance", "glance-api.conf"), "db_sync"]],
        "neutron": [[os.path.join(MASTER, "bin", "neutron-db-manage"), "--config-file",
                     path("neutron", "neutron.conf"), "upgrade", "heads"]],
        "nova": [
            [nm, *nconf, "api_db", "sync"],
            [nm, *nconf, "cell_v2", "map_cell0", "--database_connection",
             f"{MYSQL}/{TAG}_nova_cell0"],
            [nm, *nconf, "cell_v2", "create_cell", "--name", "cell1"],
            [nm, *nconf, "db", "sync"],
        ],
    }
    errors = []

    def one(name, argvs):
        try:
            for argv in argvs:
                run(name + "-manage", argv)
        except SystemExit as e:
            errors.append(str(e))

    threads = [threading.Thread(target=one, args=kv) for kv in steps.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("\n".join(errors))


def serve():
    gunicorn("keystone", MASTER)
    gunicorn("placement", STABLE)
    gunicorn("glance", STABLE)
    gunicorn("neutron", MASTER)
    gunicorn("nova", STABLE)
    gunicorn("barbican", MASTER, env={**os.environ, "HOME": path("barbican")})


def nova_services():
    """nova-conductor, -scheduler and -compute (their users must exist: they authenticate at
    start)."""
    nconf = ["--config-file", path("nova", "nova.conf")]
    for svc in ("conductor", "scheduler"):
        start(f"nova-{svc}", [os.path.join(STABLE, "bin", f"nova-{svc}"), *nconf])
    # Nova looks compute drivers up under nova.virt: rocta_virt is registered there first
    # (after nova.cmd.compute's own imports, which patch the standard library).
    compute = write("nova/nova_compute.py", """import sys
from nova.cmd import compute
import rocta_virt
sys.modules["nova.virt.rocta_virt"] = rocta_virt
sys.exit(compute.main())
""")
    start("nova-compute", [os.path.join(STABLE, "bin", "python"), compute, *nconf])


def call(method, url, body=None, token=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, method=method, data=data)
    req.add_header("Content-Type", "application/octet-stream" if raw is not None
                   else "application/json")
    req.add_header("Accept", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req, timeout=120) as r:
        text = r.read()
        return r.headers, (json.loads(text) if text else None)


def wait_http(name, url, timeout=240):
    deadline = time.monotonic() + timeout
    while True:
        dead = [n for n, p in procs if p.poll() is not None]
        if dead:
            raise SystemExit(f"{', '.join(dead)} exited; see {path('logs')}")
        try:
            urllib.request.urlopen(url, timeout=10).read()
            return
        except urllib.error.HTTPError:
            return  # answering (300 version lists, 401 without a token)
        except Exception:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} does not answer at {url}; see {path('logs')}")
            time.sleep(0.5)


def token(user, project):
    h, _ = call("POST", KEYSTONE + "/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": f"{user}-pass"}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
    return h["X-Subject-Token"]


def identities():
    admin = token("admin", "admin")
    roles = {r["name"]: r["id"] for r in call("GET", KEYSTONE + "/roles", token=admin)[1]["roles"]}
    for name in ("service", "member", "reader"):
        if name not in roles:
            roles[name] = call("POST", KEYSTONE + "/roles", {"role": {"name": name}},
                               admin)[1]["role"]["id"]
    projects = {"admin": None}
    for p in call("GET", KEYSTONE + "/projects", token=admin)[1]["projects"]:
        projects[p["name"]] = p["id"]
    for p in ("service", "lb-a", "lb-b"):
        projects[p] = call("POST", KEYSTONE + "/projects",
                           {"project": {"name": p, "domain_id": "default"}},
                           admin)[1]["project"]["id"]
    users = [(u, "service", r) for u in ("rocta", "nova", "neutron", "glance", "placement",
                                         "barbican") for r in ("admin", "service")]
    users += [("alice", "lb-a", "member"), ("bob", "lb-b", "member")]
    ids = {}
    for user, project, role in users:
        if user not in ids:
            ids[user] = call("POST", KEYSTONE + "/users", {"user": {
                "name": user, "domain_id": "default", "password": f"{user}-pass"}},
                admin)[1]["user"]["id"]
        call("PUT", f"{KEYSTONE}/projects/{projects[project]}/users/{ids[user]}/roles/"
             f"{roles[role]}", token=admin)
    for kind, name, url in (("placement", "placement", URL["placement"]),
                            ("image", "glance", URL["glance"]),
                            ("network", "neutron", URL["neutron"]),
                            ("compute", "nova", URL["nova"] + "/v2.1"),
                            ("key-manager", "barbican", URL["barbican"])):
        sid = call("POST", KEYSTONE + "/services", {"service": {"type": kind, "name": name}},
                   admin)[1]["service"]["id"]
        for interface in ("public", "internal", "admin"):
            call("POST", KEYSTONE + "/endpoints", {"endpoint": {
                "service_id": sid, "interface": interface, "url": url, "region_id": REGION}},
                admin)
    return projects


def resources(projects):
    admin = token("admin", "admin")
    nova = URL["nova"] + "/v2.1"
    mv = {"OpenStack-API-Version": "compute 2.15", "X-OpenStack-Nova-API-Version": "2.15"}
    # nova-compute registers itself; the scheduler maps it into cell1 (every 2 s).
    deadline = time.monotonic() + 180
    while not call("GET", nova + "/os-hypervisors", token=admin, headers=mv)[1]["hypervisors"]:
        dead = [n for n, p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise SystemExit(f"nova-compute never registered; see {path('logs')}")
        time.sleep(1)
    flavor = call("POST", nova + "/flavors", {"flavor": {
        "name": "amphora", "vcpus": 1, "ram": 1024, "disk": 2}}, admin,
        headers=mv)[1]["flavor"]["id"]
    image = call("POST", URL["glance"] + "/v2/images", {
        "name": "amphora-x64-haproxy", "disk_format": "raw", "container_format": "bare",
        "visibility": "public", "tags": ["amphora"]}, admin)[1]["id"]
    call("PUT", f"{URL['glance']}/v2/images/{image}/file", token=admin,
         raw=b"rocta test amphora image\n" * 40)
    neutron = URL["neutron"] + "/v2.0"
    # The load balancer service's project holds a security group per load balancer and the
    # amphorae's ports: unlimited, as Octavia's devstack plugin sets them (Neutron's default is
    # 10 security groups).
    call("PUT", f"{neutron}/quotas/{projects['service']}", {"quota": {
        "security_group": -1, "security_group_rule": -1, "port": -1}}, admin)
    nets = {}
    for name, cidr, project, shared in (("lb-mgmt-net", "198.19.251.0/24", "service", False),
                                        ("public", "198.19.252.0/24", "admin", True),
                                        ("private", "198.19.253.0/24", "lb-a", False)):
        net = {"name": name, "shared": shared}
        if projects.get(project):
            net["project_id"] = projects[project]
        n = call("POST", neutron + "/networks", {"network": net}, admin)[1]["network"]
        sub = {"name": name.replace("-net", "") + "-subnet", "network_id": n["id"],
               "ip_version": 4, "cidr": cidr, "enable_dhcp": False}
        if projects.get(project):
            sub["project_id"] = projects[project]
        s = call("POST", neutron + "/subnets", {"subnet": sub}, admin)[1]["subnet"]
        nets[name] = {"network_id": n["id"], "subnet_id": s["id"], "cidr": cidr}
    # A second subnet on the public network, for additional VIPs.
    sub = {"name": "public-2-subnet", "network_id": nets["public"]["network_id"],
           "ip_version": 4, "cidr": "198.19.250.0/24", "enable_dhcp": False}
    if projects.get("admin"):
        sub["project_id"] = projects["admin"]
    s = call("POST", neutron + "/subnets", {"subnet": sub}, admin)[1]["subnet"]
    nets["public-2"] = {"network_id": nets["public"]["network_id"], "subnet_id": s["id"],
                        "cidr": "198.19.250.0/24"}
    return {"flavor_id": flavor, "image_id": image, "networks": nets}


def stop():
    for _, p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 3  # nova-scheduler ignores SIGTERM for ~15 s
    for _, p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    for db in DATABASES:
        try:
            sql(f"DROP DATABASE IF EXISTS {TAG}_{db}")
        except Exception as e:  # noqa: BLE001 (best effort at the end)
            log(f"dropping {TAG}_{db}: {e}")
    try:
        rabbitmqctl("delete_vhost", TAG)
    except Exception as e:  # noqa: BLE001
        log(f"deleting vhost {TAG}: {e}")
    if not os.environ.get("ROCTA_OS_KEEP"):
        shutil.rmtree(DIR, ignore_errors=True)


def main():
    os.makedirs(DIR, exist_ok=True)
    try:
        for db in DATABASES:
            sql(f"CREATE DATABASE {TAG}_{db} CHARACTER SET utf8mb4")
        rabbitmqctl("add_vhost", TAG)
        rabbitmqctl("set_permissions", "-p", TAG, "guest", ".*", ".*", ".*")
        configure()
        log("configured; syncing the databases")
        sync()
        log("databases synced; starting the services")
        serve()
        wait_http("keystone", KEYSTONE)
        projects = identities()
        nova_services()
        for s in SERVICES:
            wait_http(s, URL[s])
        log("APIs answer; waiting for nova-compute")
        made = resources(projects)
        ready = {"keystone": KEYSTONE, "urls": URL, "region": REGION, "projects": projects,
                 "dir": DIR, **made}
        log("ready")
        print("READY " + json.dumps(ready), flush=True)
        sys.stdin.read()
    finally:
        stop()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
