"""rocta against a real Octavia client: openstacksdk's load-balancer proxy, unchanged.

Run by `scripts/test` against `rocta serve --drivers noop`:

    ROCTA_URL=http://127.0.0.1:9876 python3 -m pytest tests/compat

It covers what the team's `sdk_compat.py` covers (full CRUD of every resource with the load
balancer back to ACTIVE after each change, list filters, find, the status tree, statistics, 404
after delete and for unknown ids, 409 for a duplicate listener port, 400 for a bad enum) and more:
cascade delete, the fully populated create, batch member update, quotas,
providers, and projects kept apart.
"""
import os
import uuid

import openstack
import pytest
from openstack import exceptions as osexc

URL = os.environ.get("ROCTA_URL", "http://127.0.0.1:9876").rstrip("/") + "/"
# The subnet rocta's loopback (and noop) network driver knows as "public".
SUBNET = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b"
TIMEOUT = 60


def connect(project, roles=None):
    """A client in `project`; without `roles` an administrator, as Octavia's noauth mode."""
    conn = openstack.connect(auth_type="none", load_balancer_endpoint_override=URL,
                             load_balancer_api_version="2")
    conn.session.additional_headers["X-Project-Id"] = project
    if roles:
        conn.session.additional_headers["X-Roles"] = roles
    return conn.load_balancer


@pytest.fixture
def lbc():
    return connect("sdk-" + uuid.uuid4().hex[:8])


def active(lbc, lb_id):
    lb = lbc.wait_for_load_balancer(lb_id, status="ACTIVE", failures=["ERROR"], interval=0.05,
                                    wait=TIMEOUT)
    assert lb.provisioning_status == "ACTIVE"
    return lb


def gone(getter, *args):
    with pytest.raises(osexc.NotFoundException):
        getter(*args)


@pytest.fixture
def lb(lbc):
    lb = lbc.create_load_balancer(name="lb-" + uuid.uuid4().hex[:6], vip_subnet_id=SUBNET)
    active(lbc, lb.id)
    yield lb
    try:
        lbc.delete_load_balancer(lb.id, cascade=True)
    except osexc.NotFoundException:
        pass


def test_load_balancer_lifecycle(lbc):
    name = "lb-" + uuid.uuid4().hex[:6]
    lb = lbc.create_load_balancer(name=name, description="d", vip_subnet_id=SUBNET,
                                  admin_state_up=True, tags=["t"])
    assert lb.name == name and len(lb.id) == 36
    assert lb.provisioning_status == "PENDING_CREATE"
    assert lb.vip_subnet_id == SUBNET and lb.vip_address and lb.vip_port_id
    assert lb.provider == "amphora"
    assert lb.project_id == lbc.session.additional_headers["X-Project-Id"]
    lb = active(lbc, lb.id)
    assert lb.is_admin_state_up is True
    assert lb.operating_status in ("ONLINE", "OFFLINE")
    assert list(lb.tags) == ["t"]
    assert [x.id for x in lbc.load_balancers(name=name)] == [lb.id]
    assert lbc.find_load_balancer(name).id == lb.id
    lbc.update_load_balancer(lb.id, description="d2", name=name + "-u")
    active(lbc, lb.id)
    got = lbc.get_load_balancer(lb.id)
    assert (got.description, got.name) == ("d2", name + "-u")
    stats = lbc.get_load_balancer_statistics(lb.id)
    for k in ("active_connections", "bytes_in", "bytes_out", "request_errors", "total_connections"):
        assert getattr(stats, k) == 0
    lbc.delete_load_balancer(lb.id)
    lbc.wait_for_delete(lb, interval=0.05, wait=TIMEOUT)
    gone(lbc.get_load_balancer, lb.id)
    gone(lbc.get_load_balancer, str(uuid.uuid4()))


def test_every_child_created_updated_and_deleted(lbc, lb):
    li = lbc.create_listener(name="li", loadbalancer_id=lb.id, protocol="HTTP", protocol_port=80,
                             connection_limit=1000)
    assert (li.protocol, li.protocol_port, li.connection_limit) == ("HTTP", 80, 1000)
    assert [x["id"] for x in li.load_balancers] == [lb.id]
    active(lbc, lb.id)
    assert lbc.get_listener(li.id).provisioning_status == "ACTIVE"
    lbc.update_listener(li.id, connection_limit=2000, description="li-d")
    active(lbc, lb.id)
    got = lbc.get_listener(li.id)
    assert (got.connection_limit, got.description) == (2000, "li-d")
    assert [x.id for x in lbc.listeners(loadbalancer_id=lb.id)] == [li.id]

    po = lbc.create_pool(name="po", listener_id=li.id, protocol="HTTP", lb_algorithm="ROUND_ROBIN",
                         session_persistence={"type": "HTTP_COOKIE"})
    assert po.session_persistence["type"] == "HTTP_COOKIE"
    active(lbc, lb.id)
    assert lbc.get_listener(li.id).default_pool_id == po.id
    lbc.update_pool(po.id, lb_algorithm="LEAST_CONNECTIONS")
    active(lbc, lb.id)
    assert lbc.get_pool(po.id).lb_algorithm == "LEAST_CONNECTIONS"

    mids = []
    for i, addr in enumerate(["192.0.2.10", "192.0.2.11"]):
        m = lbc.create_member(po.id, name=f"m{i}", address=addr, protocol_port=8080 + i,
                              subnet_id=SUBNET, weight=5 + i)
        assert (m.address, m.protocol_port, m.weight) == (addr, 8080 + i, 5 + i)
        mids.append(m.id)
        active(lbc, lb.id)
    assert sorted(x.id for x in lbc.members(po.id)) == sorted(mids)
    lbc.update_member(mids[0], po.id, weight=42, backup=True)
    active(lbc, lb.id)
    m = lbc.get_member(mids[0], po.id)
    assert (m.weight, m.backup) == (42, True)
    assert m.operating_status in ("ONLINE", "OFFLINE", "NO_MONITOR")

    hm = lbc.create_health_monitor(pool_id=po.id, name="hm", type="HTTP", delay=5, timeout=3,
                                   max_retries=3, max_retries_down=2, url_path="/healthz",
                                   expected_codes="200-204", http_method="GET")
    assert (hm.type, hm.delay, hm.url_path, hm.expected_codes) == ("HTTP", 5, "/healthz", "200-204")
    active(lbc, lb.id)
    assert lbc.get_pool(po.id).health_monitor_id == hm.id
    lbc.update_health_monitor(hm.id, delay=7, timeout=4)
    active(lbc, lb.id)
    got = lbc.get_health_monitor(hm.id)
    assert (got.delay, got.timeout) == (7, 4)

    pol = lbc.create_l7_policy(listener_id=li.id, name="pol", action="REDIRECT_TO_URL",
                               redirect_url="http://example.invalid/", position=1)
    assert (pol.action, pol.position) == ("REDIRECT_TO_URL", 1)
    active(lbc, lb.id)
    lbc.update_l7_policy(pol.id, action="REDIRECT_TO_POOL", redirect_pool_id=po.id, redirect_url=None)
    active(lbc, lb.id)
    got = lbc.get_l7_policy(pol.id)
    assert (got.action, got.redirect_pool_id) == ("REDIRECT_TO_POOL", po.id)
    rule = lbc.create_l7_rule(pol.id, type="PATH", compare_type="STARTS_WITH", value="/api",
                              invert=False)
    assert (rule.type, rule.rule_value, rule.compare_type) == ("PATH", "/api", "STARTS_WITH")
    active(lbc, lb.id)
    lbc.update_l7_rule(rule.id, pol.id, rule_value="/v2")
    active(lbc, lb.id)
    assert lbc.get_l7_rule(rule.id, pol.id).rule_value == "/v2"
    assert [x.id for x in lbc.l7_rules(pol.id)] == [rule.id]

    tree = lbc.get(f"/lbaas/loadbalancers/{lb.id}/status").json()["statuses"]["loadbalancer"]
    assert tree["id"] == lb.id
    [tli] = tree["listeners"]
    [tpo] = tli["pools"]
    assert (tli["id"], tpo["id"], tpo["health_monitor"]["id"]) == (li.id, po.id, hm.id)
    assert sorted(m["id"] for m in tpo["members"]) == sorted(mids)

    with pytest.raises(osexc.ConflictException):
        lbc.create_listener(loadbalancer_id=lb.id, protocol="HTTP", protocol_port=80)
    active(lbc, lb.id)
    with pytest.raises(osexc.BadRequestException):
        lbc.create_pool(listener_id=li.id, protocol="HTTP", lb_algorithm="NOPE")

    # Deletes, children first; each ends with the load balancer ACTIVE and the child 404.
    lbc.delete_l7_rule(rule.id, pol.id)
    active(lbc, lb.id)
    gone(lbc.get_l7_rule, rule.id, pol.id)
    lbc.delete_l7_policy(pol.id)
    active(lbc, lb.id)
    gone(lbc.get_l7_policy, pol.id)
    lbc.delete_health_monitor(hm.id)
    active(lbc, lb.id)
    gone(lbc.get_health_monitor, hm.id)
    lbc.delete_member(mids[0], po.id)
    active(lbc, lb.id)
    gone(lbc.get_member, mids[0], po.id)
    lbc.delete_pool(po.id)
    active(lbc, lb.id)
    gone(lbc.get_pool, po.id)
    gone(lbc.get_member, mids[1], po.id)
    lbc.delete_listener(li.id)
    active(lbc, lb.id)
    gone(lbc.get_listener, li.id)


def test_fully_populated_create_and_cascade_delete(lbc):
    lb = lbc.create_load_balancer(
        name="graph", vip_subnet_id=SUBNET,
        listeners=[{"name": "l1", "protocol": "HTTP", "protocol_port": 80,
                    "default_pool": {"name": "p1", "protocol": "HTTP",
                                     "lb_algorithm": "ROUND_ROBIN",
                                     "members": [{"address": "192.0.2.20", "protocol_port": 80}],
                                     "healthmonitor": {"type": "HTTP", "delay": 3, "timeout": 2,
                                                       "max_retries": 2}}}])
    assert len(lb.listeners) == 1 and len(lb.pools) == 1
    active(lbc, lb.id)
    [li] = list(lbc.listeners(loadbalancer_id=lb.id))
    [po] = list(lbc.pools(loadbalancer_id=lb.id))
    assert li.default_pool_id == po.id and po.health_monitor_id
    assert [m.address for m in lbc.members(po.id)] == ["192.0.2.20"]
    # A load balancer with children refuses a plain delete, and goes with cascade.
    with pytest.raises(osexc.BadRequestException):
        lbc.delete_load_balancer(lb.id)
    lbc.delete_load_balancer(lb.id, cascade=True)
    lbc.wait_for_delete(lb, interval=0.05, wait=TIMEOUT)
    gone(lbc.get_listener, li.id)
    gone(lbc.get_pool, po.id)


def test_batch_member_update(lbc, lb):
    li = lbc.create_listener(loadbalancer_id=lb.id, protocol="TCP", protocol_port=22)
    active(lbc, lb.id)
    po = lbc.create_pool(listener_id=li.id, protocol="TCP", lb_algorithm="ROUND_ROBIN")
    active(lbc, lb.id)
    lbc.create_member(po.id, address="192.0.2.1", protocol_port=22)
    active(lbc, lb.id)
    members = [{"address": "192.0.2.2", "protocol_port": 22},
               {"address": "192.0.2.3", "protocol_port": 22}]
    r = lbc.put(f"/lbaas/pools/{po.id}/members", json={"members": members})
    assert r.status_code == 202, r.text
    active(lbc, lb.id)
    assert sorted(m.address for m in lbc.members(po.id)) == ["192.0.2.2", "192.0.2.3"]


def test_projects_kept_apart(lbc, lb):
    member = connect(lb.project_id, roles="member")
    other = connect("other-" + uuid.uuid4().hex[:8], roles="member")
    assert lb.id in [x.id for x in member.load_balancers()]
    assert lb.id not in [x.id for x in other.load_balancers()]
    # Another project's object is refused by policy (403), as Octavia; not hidden (404).
    with pytest.raises(osexc.HttpException) as e:
        other.get_load_balancer(lb.id)
    assert e.value.status_code == 403
    # The administrator (noauth without roles) lists every project's.
    assert lb.id in [x.id for x in connect("admin").load_balancers()]


def test_quotas_and_providers(lbc):
    project = "quota-" + uuid.uuid4().hex[:8]
    q = lbc.update_quota(project, load_balancers=1)
    assert q.load_balancers == 1
    limited = connect(project)
    lb = limited.create_load_balancer(vip_subnet_id=SUBNET)
    with pytest.raises(osexc.HttpException) as e:
        limited.create_load_balancer(vip_subnet_id=SUBNET)
    assert e.value.status_code == 403
    active(limited, lb.id)
    limited.delete_load_balancer(lb.id)
    lbc.delete_quota(project)
    assert lbc.get_quota(project).load_balancers in (None, -1)
    assert "amphora" in [p.name for p in lbc.providers()]
