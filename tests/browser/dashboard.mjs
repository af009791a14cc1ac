// The dashboard in a real browser (Debian's chromium, headless, driven by playwright-core).
//
//   node tests/browser/dashboard.mjs ROCTA_BIN [SCREENSHOT_DIR]
//
// Starts `rocta serve --drivers local` (real amphorae with HAProxy on loopback) in a temporary
// directory and an HTTP backend on 127.0.0.1, opens /dashboard/ and checks: the page loads with
// no console error (nor failed request, nor uncaught exception) for the whole run; a load
// balancer created through the API appears on the page within 2 s; its member turns ONLINE,
// the listener's connection chart moves with traffic sent through the VIP; once the backend
// stops, the member turns ERROR on the page; the amphorae view shows the load balancer's
// amphora with its heartbeat age, and the jobs view the create with its steps. With
// SCREENSHOT_DIR, writes the views as PNGs there (docs/ keeps them). Removes what it made.

import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [bin, shots] = process.argv.slice(2);
if (!bin) {
  console.error("usage: node tests/browser/dashboard.mjs ROCTA_BIN [SCREENSHOT_DIR]");
  process.exit(2);
}
const PUBLIC = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b";
const CONFIG = `[controller_worker]
job_poll_interval_ms = 50
[health_manager]
bind_port = 0
heartbeat_interval = 0.5
`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rocta-dashboard-"));
const cleanups = [];
let failed = false;

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function eventually(what, timeoutMs, f) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out (${timeoutMs} ms): ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function startRocta() {
  fs.writeFileSync(path.join(dir, "rocta.toml"), CONFIG);
  const child = spawn(
    bin,
    ["serve", "--drivers", "local", "--config", path.join(dir, "rocta.toml"),
      "--data-dir", path.join(dir, "data"), "--api-bind", "127.0.0.1:0"],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RUST_LOG: process.env.ROCTA_TEST_LOG || "error" } },
  );
  cleanups.push(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20000))]);
    }
  });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/API listening on (\S+)/);
      if (m) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`rocta serve exited (${code}) before listening`)));
  });
}

function startBackend() {
  const sockets = new Set();
  const server = http.createServer((req, res) => res.end("hello from the backend\n"));
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  const stop = () =>
    new Promise((r) => {
      server.close(r);
      for (const s of sockets) s.destroy();
    });
  cleanups.push(stop);
  return new Promise((r) => server.listen(0, "127.0.0.1", () => r({ port: server.address().port, stop })));
}

function client(url) {
  const call = async (method, p, body) => {
    const r = await fetch(url + p, {
      method,
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-Project-Id": "dashboard-test" },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
  return {
    get: (p) => call("GET", p),
    post: (p, b) => call("POST", p, b),
    del: (p) => call("DELETE", p),
  };
}

async function main() {
  const url = await startRocta();
  const api = client(url);
  const backend = await startBackend();

  const browser = await chromium.launch({
    executablePath: process.env.ROCTA_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  cleanups.push(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });

  await page.goto(`${url}/dashboard`);
  await page.getByText("No load balancers yet.").waitFor({ timeout: 10000 });
  check(true, "the dashboard loads and shows no load balancers");

  // A fully populated load balancer: HTTP listener, pool with an HTTP monitor, one member.
  const created = await api.post("/v2/lbaas/loadbalancers", {
    loadbalancer: {
      name: "web", vip_subnet_id: PUBLIC,
      listeners: [{ name: "http", protocol: "HTTP", protocol_port: 8080, default_pool: { name: "app" } }],
      pools: [{
        name: "app", protocol: "HTTP", lb_algorithm: "ROUND_ROBIN",
        healthmonitor: { type: "HTTP", delay: 1, timeout: 1, max_retries: 1, max_retries_down: 1 },
        members: [{ name: "backend-1", address: "127.0.0.1", protocol_port: backend.port }],
      }],
    },
  });
  const posted = Date.now();
  check(created.status === 201, `load balancer created (${created.status}${created.status === 201 ? "" : ` ${JSON.stringify(created.body)}`})`);
  const lb = created.body.loadbalancer;
  cleanups.unshift(async () => {
    await api.del(`/v2/lbaas/loadbalancers/${lb.id}?cascade=true`);
    await eventually("the load balancer is deleted", 60000, async () => (await api.get(`/v2/lbaas/loadbalancers/${lb.id}`)).status === 404);
  });
  await page.locator(`[data-lb="${lb.id}"]`).waitFor({ timeout: 2000 });
  check(Date.now() - posted <= 2000, `the new load balancer is on the page ${Date.now() - posted} ms after its 201`);

  await eventually("the load balancer turns ACTIVE", 60000, async () =>
    (await api.get(`/v2/lbaas/loadbalancers/${lb.id}`)).body.loadbalancer.provisioning_status === "ACTIVE");
  const member = lb.pools[0].members[0].id;
  const listener = lb.listeners[0].id;
  const memberBadge = (status) => page.locator(`[data-member-status="${member}"][data-status="${status}"]`);
  await memberBadge("ONLINE").waitFor({ timeout: 30000 });
  check(true, "the member is ONLINE on the page");

  // Traffic through the VIP: the listener's connection chart shows it.
  const vip = created.body.loadbalancer.vip_address;
  // 12 rounds of 25 requests, half a second apart: the chart draws a few seconds of it.
  let answered = 0;
  for (let round = 0; round < 12; round++) {
    for (let i = 0; i < 25; i++) {
      const r = await fetch(`http://${vip}:8080/`, { headers: { Connection: "close" } });
      if ((await r.text()).startsWith("hello")) answered += 1;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  check(answered === 300, `300 requests through the VIP ${vip} answered by the backend (${answered})`);
  await eventually("the connection chart shows traffic", 15000, () =>
    page.evaluate((id) => {
      const line = document.querySelector(`[data-listener="${id}"] .chart polyline`);
      return !!line && line.getAttribute("points").split(" ").some((p) => Number(p.split(",")[1]) < 30);
    }, listener));
  check(true, "the listener's connection chart moved with traffic");
  if (shots) await page.screenshot({ path: path.join(shots, "dashboard-loadbalancers.png"), fullPage: true });

  await page.click('nav a[data-view="amphorae"]');
  const amp = page.locator("[data-amphora]").filter({ hasText: lb.id });
  await amp.waitFor({ timeout: 5000 });
  await eventually("the amphora shows a recent heartbeat", 10000, async () => /s ago/.test(await amp.innerText()));
  check(true, "the amphorae view shows the load balancer's amphora and its last heartbeat");
  if (shots) await page.screenshot({ path: path.join(shots, "dashboard-amphorae.png"), fullPage: true });

  // A failover (Octavia's API): the jobs view lists it among the failovers, with its steps.
  const fo = await fetch(`${url}/v2/lbaas/loadbalancers/${lb.id}/failover`, {
    method: "PUT", headers: { "X-Project-Id": "dashboard-test" },
  });
  check(fo.status === 202, `load balancer failover accepted (${fo.status})`);
  await page.click('nav a[data-view="jobs"]');
  const failover = page.locator('[data-jobs="failovers"] [data-job]').filter({ hasText: "failover loadbalancer" });
  await failover.first().waitFor({ timeout: 60000 });
  check(await failover.first().locator(".step.done").count() > 3, "the jobs view shows the failover, its steps done");
  const job = page.locator('[data-jobs="ended"] [data-job]').filter({ hasText: "create loadbalancer" }).first();
  await job.waitFor({ timeout: 5000 });
  check(await job.locator(".step.done").count() > 3, "the jobs view shows the create with its steps done");
  if (shots) await page.screenshot({ path: path.join(shots, "dashboard-jobs.png"), fullPage: true });

  await page.click('nav a[data-view="loadbalancers"]');
  await memberBadge("ONLINE").waitFor({ timeout: 30000 });
  await backend.stop();
  const stopped = Date.now();
  await memberBadge("ERROR").waitFor({ timeout: 30000 });
  check(true, `the member turns ERROR on the page ${((Date.now() - stopped) / 1000).toFixed(1)} s after its backend stopped`);
  if (shots) await page.screenshot({ path: path.join(shots, "dashboard-member-down.png"), fullPage: true });

  // A tenant's view (noauth's headers, entered in the page): its load balancer, no admin views.
  await page.fill('#creds input[name="project"]', "dashboard-test");
  await page.fill('#creds input[name="roles"]', "member,load-balancer_member");
  await page.click('#creds button[type="submit"]');
  await eventually("the page shows the tenant's project", 5000, async () =>
    /^project dashboard-test · updated/.test(await page.locator("#state").innerText()))
    .catch(async (e) => { throw new Error(`${e.message}; the page says: ${await page.locator("#state").innerText()}`); });
  await page.locator(`[data-lb="${lb.id}"]`).waitFor({ timeout: 5000 });
  await page.click('nav a[data-view="amphorae"]');
  await page.getByText("Only administrators see this view.").waitFor({ timeout: 5000 });
  check(true, "a tenant sees its load balancer and not the administrators' views");

  check(problems.length === 0, `no console error, failed request or uncaught exception${problems.length ? `: ${problems.join("; ")}` : ""}`);
}

try {
  await main();
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
} finally {
  for (const c of cleanups) {
    try {
      await c();
    } catch (e) {
      failed = true;
      console.error(`cleanup: ${e.message}`);
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
