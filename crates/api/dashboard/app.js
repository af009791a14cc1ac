// rocta's dashboard: polls the Octavia API (and, for administrators, /dashboard/api) with the
// caller's credentials and draws what it finds. Everything a tenant named is put in the page as
// text (textContent), never as markup.

const AUTH = document.documentElement.dataset.auth; // "noauth" or "keystone"
const POLL_MS = 1000;
const SAMPLES = 40; // points per listener chart (one a second)
const MAX_TREES = 40; // status trees fetched per round

const creds = JSON.parse(sessionStorage.getItem("rocta.creds") || "{}");
const samples = new Map(); // listener id -> [{t, conns, bytes, active}]
let whoami = null;
let timer = null;

class AuthError extends Error {}

function headers() {
  const h = { Accept: "application/json" };
  if (creds.token) h["X-Auth-Token"] = creds.token;
  if (creds.project) h["X-Project-Id"] = creds.project;
  if (creds.roles) h["X-Roles"] = creds.roles;
  return h;
}

async function api(path) {
  const r = await fetch(path, { headers: headers() });
  if (r.status === 401) throw new AuthError("the token was refused: enter a valid one");
  if (!r.ok) {
    let why = `${r.status}`;
    try {
      why = (await r.json()).faultstring || why;
    } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${why}`);
  }
  return r.json();
}

// --- DOM helpers -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const badge = (status, extra) =>
  h("span", { class: `st st-${status}`, "data-status": status, ...extra }, status);
const short = (id) => (id ? String(id).slice(0, 8) : "—");

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 60) return `${seconds.toFixed(1)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function since(iso) {
  return iso ? age((Date.now() - Date.parse(iso)) / 1000) : "—";
}

function rate(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(v < 10 ? 1 : 0);
}

// A small line chart of `values` (newest last), scaled to their maximum.
function sparkline(values, label, unit) {
  const W = 150, H = 34;
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => {
    const x = W - (values.length - 1 - i) * (W / (SAMPLES - 1));
    const y = H - 2 - (v / max) * (H - 4);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const area = document.createElementNS(NS, "polygon");
  if (pts.length) area.setAttribute("points", `${pts[0].split(",")[0]},${H} ${pts.join(" ")} ${W},${H}`);
  const line = document.createElementNS(NS, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.append(area, line);
  const now = values.length ? values[values.length - 1] : 0;
  return h("div", { class: "chart" }, svg, label, " ", h("span", { class: "now" }, rate(now)), ` ${unit}`);
}

// --- listener statistics -----------------------------------------------------------------

function record(listenerId, stats) {
  const t = performance.now() / 1000;
  const list = samples.get(listenerId) || [];
  list.push({
    t,
    conns: stats.total_connections,
    bytes: stats.bytes_in + stats.bytes_out,
    active: stats.active_connections,
  });
  while (list.length > SAMPLES + 1) list.shift();
  samples.set(listenerId, list);
}

// Rates between successive samples (a counter that went back, as after a reload, counts 0).
function rates(listenerId, key) {
  const list = samples.get(listenerId) || [];
  const out = [];
  for (let i = 1; i < list.length; i++) {
    const dt = list[i].t - list[i - 1].t;
    const d = list[i][key] - list[i - 1][key];
    out.push(dt > 0 && d > 0 ? d / dt : 0);
  }
  return out;
}

// --- views -------------------------------------------------------------------------------

async function loadBalancersView() {
  const [{ loadbalancers }, { listeners }] = await Promise.all([
    api("/v2/lbaas/loadbalancers"),
    api("/v2/lbaas/listeners"),
  ]);
  const byId = new Map(listeners.map((l) => [l.id, l]));
  const shown = loadbalancers.slice(0, MAX_TREES);
  const trees = await Promise.all(
    shown.map((lb) =>
      api(`/v2/lbaas/loadbalancers/${lb.id}/status`)
        .then((s) => s.statuses.loadbalancer)
        .catch(() => null),
    ),
  );
  const live = listeners.filter((l) => l.provisioning_status !== "PENDING_DELETE");
  await Promise.all(
    live.map((l) =>
      api(`/v2/lbaas/listeners/${l.id}/stats`)
        .then((s) => record(l.id, s.stats))
        .catch(() => null),
    ),
  );
  for (const id of samples.keys()) if (!byId.has(id)) samples.delete(id);

  const cards = shown.map((lb, i) => lbCard(lb, trees[i], byId));
  const more = loadbalancers.length > shown.length
    ? h("p", { class: "empty" }, `${loadbalancers.length - shown.length} more not shown`)
    : null;
  return [
    h("h2", {}, `Load balancers (${loadbalancers.length})`),
    loadbalancers.length
      ? h("div", { class: "lbs" }, cards)
      : h("p", { class: "empty" }, "No load balancers yet."),
    more,
  ];
}

function lbCard(lb, tree, listenersById) {
  const listeners = tree ? tree.listeners : [];
  return h(
    "div",
    { class: "card", "data-lb": lb.id },
    h(
      "div",
      { class: "title" },
      h("b", {}, lb.name || "(no name)"),
      h("span", { class: "id" }, lb.id),
      badge(lb.provisioning_status),
      badge(lb.operating_status, { "data-lb-status": lb.id }),
    ),
    h(
      "div",
      { class: "meta" },
      `VIP ${lb.vip_address || "—"} · ${lb.provider} · project ${lb.project_id}`,
      lb.availability_zone ? ` · zone ${lb.availability_zone}` : "",
    ),
    listeners.length
      ? h("ul", { class: "tree" }, listeners.map((l) => listenerNode(l, listenersById.get(l.id))))
      : h("p", { class: "empty" }, "No listeners."),
  );
}

// One line of the status tree: the object's kind, its name (else its id's start), the rest.
function nodeLine(kind, obj, ...rest) {
  return h("div", { class: "node" }, `${kind} `, h("b", {}, obj.name || short(obj.id)), ...rest);
}

function listenerNode(l, full) {
  const proto = full ? `${full.protocol}:${full.protocol_port}` : "";
  const list = samples.get(l.id) || [];
  const active = list.length ? list[list.length - 1].active : 0;
  return h(
    "li",
    { "data-listener": l.id },
    nodeLine("Listener", l, proto, badge(l.operating_status)),
    h(
      "div",
      { class: "charts" },
      sparkline(rates(l.id, "conns"), "connections", "/s"),
      sparkline(rates(l.id, "bytes").map((b) => b / 1024), "traffic", "KiB/s"),
      h("div", { class: "chart" }, "active ", h("span", { class: "now" }, active)),
    ),
    l.pools.length ? h("ul", { class: "tree" }, l.pools.map(poolNode)) : null,
  );
}

function poolNode(p) {
  const hm = p.health_monitor;
  return h(
    "li",
    { "data-pool": p.id },
    nodeLine("Pool", p, badge(p.operating_status), hm ? ["monitor ", hm.type, badge(hm.operating_status)] : null),
    p.members.length
      ? h(
          "ul",
          { class: "tree" },
          p.members.map((m) =>
            h(
              "li",
              { "data-member": m.id },
              nodeLine(
                "Member",
                m,
                `${m.address}:${m.protocol_port}`,
                badge(m.operating_status, { "data-member-status": m.id }),
              ),
            ),
          ),
        )
      : null,
  );
}

async function amphoraeView() {
  if (!whoami.is_admin) return adminOnly("Amphorae");
  const { amphorae, heartbeat_timeout } = await api("/dashboard/api/amphorae");
  const rows = amphorae.map((a) => {
    const stale = a.last_heartbeat_age !== null && a.last_heartbeat_age > heartbeat_timeout;
    const expires = a.cert_expiration ? Date.parse(`${a.cert_expiration}Z`) : NaN;
    const days = Number.isNaN(expires) ? null : (expires - Date.now()) / 86400e3;
    return h(
      "tr",
      { "data-amphora": a.id },
      h("td", {}, h("span", { class: "id" }, a.id)),
      h("td", {}, h("span", { class: "id" }, a.loadbalancer_id || "spare")),
      h("td", {}, a.role || "—"),
      h("td", {}, badge(a.status)),
      h("td", {}, a.lb_network_ip || "—"),
      h("td", {}, age(a.last_heartbeat_age), " ", stale ? badge("stale") : null),
      h("td", {}, a.cert_expiration ? `${a.cert_expiration.slice(0, 10)} (${days.toFixed(0)} days)` : "—"),
      h("td", {}, a.cached_zone || "—"),
    );
  });
  return [
    h("h2", {}, `Amphorae (${amphorae.length})`),
    amphorae.length
      ? h(
          "table",
          {},
          h("tr", {}, ["Amphora", "Load balancer", "Role", "Status", "Management IP", "Last heartbeat", "Certificate expires", "Zone"].map((t) => h("th", {}, t))),
          rows,
        )
      : h("p", { class: "empty" }, "No amphorae."),
  ];
}

function describe(j) {
  const m = j.job || {};
  if (j.kind === "child") return `${m.op} ${m.kind} ${short(m.id)}`;
  if (m.amphora_id) return `${j.kind.replaceAll("_", " ")} ${short(m.amphora_id)}`;
  return j.kind.replaceAll("_", " ");
}

// The job's steps in order, each styled by its state (done, reverted, failed, not_run).
function steps(j) {
  const failedShown = j.steps.some((s) => s.state === "failed");
  return h(
    "div",
    { class: "steps" },
    j.steps.map((s) => h("span", { class: `step ${s.state}`, title: s.state }, s.name)),
    j.failed_step !== null && j.failed_step !== undefined && !failedShown
      ? h("span", { class: "step failed" }, `step ${j.failed_step} failed`)
      : null,
  );
}

function jobTable(jobs, ended) {
  if (!jobs.length) return h("p", { class: "empty" }, "None.");
  return h(
    "table",
    {},
    h("tr", {}, ["Job", "Load balancer", "State", "Steps", ended ? "Ended" : "Posted", "Attempts"].map((t) => h("th", {}, t))),
    jobs.map((j) =>
      h(
        "tr",
        { "data-job": j.id },
        h("td", {}, describe(j)),
        h("td", {}, h("span", { class: "id" }, j.loadbalancer_id || "—")),
        h("td", {}, badge(j.state)),
        h("td", {}, steps(j), j.error ? h("div", { class: "err" }, j.error) : null),
        h("td", {}, since(ended ? j.updated_at : j.created_at)),
        h("td", {}, j.attempts),
      ),
    ),
  );
}

async function jobsView() {
  if (!whoami.is_admin) return adminOnly("Jobs");
  const { open, ended, failovers } = await api("/dashboard/api/jobs?limit=30");
  return [
    h("div", { "data-jobs": "open" }, h("h2", {}, `Running and queued (${open.length})`), jobTable(open, false)),
    h("div", { "data-jobs": "failovers" }, h("h2", {}, "Recent failovers"), jobTable(failovers, true)),
    h("div", { "data-jobs": "ended" }, h("h2", {}, "Recently ended"), jobTable(ended, true)),
  ];
}

function adminOnly(what) {
  return [h("h2", {}, what), h("p", { class: "empty" }, "Only administrators see this view.")];
}

// --- the loop ----------------------------------------------------------------------------

const VIEWS = { loadbalancers: loadBalancersView, amphorae: amphoraeView, jobs: jobsView };

function current() {
  const v = location.hash.slice(1);
  return VIEWS[v] ? v : "loadbalancers";
}

function setState(text, bad) {
  const s = document.getElementById("state");
  s.textContent = text;
  s.classList.toggle("bad", !!bad);
}

async function refresh() {
  const view = current();
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.view === view);
  }
  for (const s of document.querySelectorAll("section.view")) s.hidden = s.id !== view;
  if (AUTH === "keystone" && !creds.token) {
    setState("enter a Keystone token", true);
    return false;
  }
  if (!whoami) whoami = await api("/dashboard/api/whoami");
  const content = await VIEWS[view]();
  // The view may have changed while this one loaded.
  if (view === current()) {
    document.getElementById(view).replaceChildren(...content.flat().filter((c) => c !== null));
  }
  const who = whoami.project_id ? `project ${whoami.project_id}` : "no project";
  setState(`${who}${whoami.is_admin ? " (admin)" : ""} · updated ${new Date().toLocaleTimeString()}`);
  return true;
}

async function tick() {
  clearTimeout(timer);
  let again = true;
  try {
    again = await refresh();
  } catch (e) {
    setState(e.message, true);
    if (e instanceof AuthError) {
      whoami = null;
      again = false;
    }
  }
  if (again) timer = setTimeout(tick, POLL_MS);
}

document.getElementById("creds").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  for (const k of ["token", "project", "roles"]) {
    const v = (f.get(k) || "").trim();
    if (v) creds[k] = v;
    else delete creds[k];
  }
  sessionStorage.setItem("rocta.creds", JSON.stringify(creds));
  whoami = null;
  tick();
});
for (const k of ["project", "roles"]) {
  const input = document.querySelector(`#creds input[name=${k}]`);
  if (creds[k]) input.value = creds[k];
}
window.addEventListener("hashchange", tick);
tick();
