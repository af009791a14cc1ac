#!/usr/bin/env python3
"""A real Keystone for rocta's tests: SQLite, fernet tokens, bootstrapped, on 127.0.0.1.

Usage: keystone_server.py DIR PORT [TYPE=NAME=URL ...]  (with the Python of a venv that has
keystone)

Sets up Keystone in DIR, serves it on 127.0.0.1:PORT (a threaded WSGI server), creates
the test identities below and, for each TYPE=NAME=URL, a service of that type and name whose
public, internal and admin endpoints in RegionOne are URL (e.g.
load-balancer=octavia=http://127.0.0.1:9876), prints one line "READY <json>" and serves until
its standard input closes (the process that started it ended), then exits.

Identities (domain Default; every password is "<user>-pass"):
  admin    admin of project admin (keystone-manage bootstrap)
  rocta    the service user: role service in project service
  alice    member of project lb-a;  rita: reader of lb-a;  bob: member of project lb-b
"""
import json
import os
import socketserver
import subprocess
import sys
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

d, port = sys.argv[1], int(sys.argv[2])
services = [a.split("=", 2) for a in sys.argv[3:]]
os.makedirs(d, exist_ok=True)
conf = os.path.join(d, "keystone.conf")
with open(conf, "w") as f:
    f.write(f"""[DEFAULT]
log_file = {d}/keystone.log
[database]
connection = sqlite:///{d}/keystone.db
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = {d}/fernet-keys
[fernet_receipts]
key_repository = {d}/fernet-keys
[credential]
key_repository = {d}/credential-keys
""")
manage = os.path.join(os.path.dirname(sys.executable), "keystone-manage")
base = f"http://127.0.0.1:{port}"
for args in (
    ["db_sync"],
    ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
    ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
    ["bootstrap", "--bootstrap-password", "admin-pass", "--bootstrap-public-url",
     f"{base}/v3", "--bootstrap-region-id", "RegionOne"],
):
    subprocess.run([manage, "--config-file", conf] + args, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

os.environ["OS_KEYSTONE_CONFIG_FILES"] = conf
sys.argv = sys.argv[:1]  # oslo.config parses the command line too
from keystone.wsgi.api import application  # noqa: E402  (reads the config above)


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Quiet(WSGIRequestHandler):
    def log_message(self, *a):
        pass


# One request at a time: Keystone on SQLite answers 500 ("database is locked") when two
# requests write at once, which tempest's parallel workers do.
one_at_a_time = threading.Lock()


def serialized(environ, start_response):
    with one_at_a_time:
        return list(application(environ, start_response))


httpd = make_server("127.0.0.1", port, serialized, server_class=Server, handler_class=Quiet)
threading.Thread(target=httpd.serve_forever, daemon=True).start()


def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return r.headers, (json.loads(text) if text else None)


def token(user, project):
    h, _ = call("POST", "/v3/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": f"{user}-pass"}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
    return h["X-Subject-Token"]


admin = token("admin", "admin")
roles = {r["name"]: r["id"] for r in call("GET", "/v3/roles", token=admin)[1]["roles"]}
for name in ("service", "member", "reader"):
    if name not in roles:
        roles[name] = call("POST", "/v3/roles", {"role": {"name": name}}, admin)[1]["role"]["id"]
projects = {}
for p in ("service", "lb-a", "lb-b"):
    projects[p] = call("POST", "/v3/projects",
                       {"project": {"name": p, "domain_id": "default"}}, admin)[1]["project"]["id"]
for user, project, role in (("rocta", "service", "service"), ("alice", "lb-a", "member"),
                            ("rita", "lb-a", "reader"), ("bob", "lb-b", "member")):
    uid = call("POST", "/v3/users", {"user": {"name": user, "domain_id": "default",
                                              "password": f"{user}-pass"}}, admin)[1]["user"]["id"]
    call("PUT", f"/v3/projects/{projects[project]}/users/{uid}/roles/{roles[role]}", token=admin)

for kind, name, url in services:
    sid = call("POST", "/v3/services", {"service": {"type": kind, "name": name}},
               admin)[1]["service"]["id"]
    for interface in ("public", "internal", "admin"):
        call("POST", "/v3/endpoints", {"endpoint": {
            "service_id": sid, "interface": interface, "url": url, "region_id": "RegionOne"}},
            admin)

print("READY " + json.dumps({"url": base, "projects": projects}), flush=True)
sys.stdin.read()
