//! The client commands against `rocta serve --drivers noop`: every resource's commands, names
//! and ids, `--wait`, output formats and columns, the status tree, and errors as one line with a
//! non-zero exit.

mod common;

use std::process::Command;

use common::{bin, Rocta, SUBNET};
use serde_json::Value;

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(r: &Rocta, args: &[&str]) -> Out {
    let out = Command::new(bin())
        .args(args)
        .env("ROCTA_URL", &r.url)
        .env("ROCTA_PROJECT", &r.project)
        .env_remove("ROCTA_TOKEN")
        .output()
        .expect("run rocta");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// Runs a command that must succeed; returns its stdout.
fn ok(r: &Rocta, args: &[&str]) -> String {
    let o = run(r, args);
    assert!(o.ok, "rocta {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
    o.stdout
}

/// Runs a command that must fail; returns its one-line error.
fn fails(r: &Rocta, args: &[&str]) -> String {
    let o = run(r, args);
    assert!(!o.ok, "rocta {args:?} should fail:\n{}", o.stdout);
    let line = o.stderr.trim().to_string();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(line.starts_with("rocta: "), "{line}");
    line
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn every_resource_through_the_cli() {
    let (_d, r) = Rocta::start();
    let lb = json(&ok(
        &r,
        &[
            "loadbalancer",
            "create",
            "--name",
            "web",
            "--vip-subnet-id",
            SUBNET,
            "--tag",
            "a",
            "--tag",
            "b",
            "--wait",
            "-f",
            "json",
        ],
    ));
    assert_eq!(
        lb["provisioning_status"], "ACTIVE",
        "--wait returns the final object"
    );
    assert_eq!(lb["tags"], serde_json::json!(["a", "b"]));
    let lb_id = lb["id"].as_str().unwrap().to_string();

    // Names and ids both name objects.
    assert_eq!(
        ok(
            &r,
            &["loadbalancer", "show", "web", "-f", "value", "-c", "id"]
        )
        .trim(),
        lb_id
    );
    assert_eq!(
        ok(
            &r,
            &["loadbalancer", "show", &lb_id, "-f", "value", "-c", "name"]
        )
        .trim(),
        "web"
    );
    let listed = ok(
        &r,
        &[
            "loadbalancer",
            "list",
            "-f",
            "value",
            "-c",
            "name",
            "-c",
            "provisioning_status",
        ],
    );
    assert_eq!(listed.trim(), "web ACTIVE");
    let table = ok(&r, &["loadbalancer", "list"]);
    assert!(
        table.contains("| id ") && table.contains("| web "),
        "{table}"
    );
    let yaml = ok(
        &r,
        &["loadbalancer", "show", "web", "-f", "yaml", "-c", "name"],
    );
    assert_eq!(yaml, "name: web\n");

    let l = json(&ok(
        &r,
        &[
            "listener",
            "create",
            "--name",
            "http",
            "--protocol",
            "HTTP",
            "--protocol-port",
            "80",
            "--insert-headers",
            "X-Forwarded-For=true",
            "--timeout-client-data",
            "5000",
            "web",
            "--wait",
            "-f",
            "json",
        ],
    ));
    assert_eq!(l["insert_headers"]["X-Forwarded-For"], "true");
    assert_eq!(l["timeout_client_data"], 5000);
    ok(
        &r,
        &[
            "pool",
            "create",
            "--name",
            "p",
            "--listener",
            "http",
            "--protocol",
            "HTTP",
            "--lb-algorithm",
            "ROUND_ROBIN",
            "--session-persistence",
            "type=APP_COOKIE,cookie_name=sid",
            "--wait",
        ],
    );
    let p = json(&ok(&r, &["pool", "show", "p", "-f", "json"]));
    assert_eq!(p["session_persistence"]["cookie_name"], "sid");
    assert_eq!(p["listeners"][0]["id"], l["id"]);
    ok(
        &r,
        &[
            "member",
            "create",
            "--name",
            "m1",
            "--address",
            "192.0.2.1",
            "--protocol-port",
            "8080",
            "p",
            "--wait",
        ],
    );
    ok(
        &r,
        &[
            "member",
            "create",
            "--address",
            "192.0.2.2",
            "--protocol-port",
            "8080",
            "--weight",
            "3",
            "--disable-backup",
            "p",
            "--wait",
        ],
    );
    ok(
        &r,
        &[
            "member",
            "set",
            "p",
            "m1",
            "--weight",
            "7",
            "--disable",
            "--wait",
        ],
    );
    let m1 = json(&ok(&r, &["member", "show", "p", "m1", "-f", "json"]));
    assert_eq!(
        (m1["weight"].as_i64(), m1["admin_state_up"].as_bool()),
        (Some(7), Some(false))
    );
    ok(
        &r,
        &[
            "healthmonitor",
            "create",
            "--name",
            "hm",
            "--type",
            "HTTP",
            "--delay",
            "5",
            "--timeout",
            "3",
            "--max-retries",
            "2",
            "--url-path",
            "/health",
            "p",
            "--wait",
        ],
    );
    ok(
        &r,
        &[
            "l7policy", "create", "--name", "admin", "--action", "REJECT", "http", "--wait",
        ],
    );
    ok(
        &r,
        &[
            "l7rule",
            "create",
            "--type",
            "PATH",
            "--compare-type",
            "STARTS_WITH",
            "--value",
            "/admin",
            "admin",
            "--wait",
        ],
    );
    let rules = ok(
        &r,
        &[
            "l7rule", "list", "admin", "-f", "value", "-c", "type", "-c", "value",
        ],
    );
    assert_eq!(rules.trim(), "PATH /admin");

    // The status tree, drawn.
    let tree = ok(&r, &["loadbalancer", "status", "web"]);
    assert!(
        tree.starts_with(&format!("loadbalancer web ({lb_id}) ACTIVE")),
        "{tree}"
    );
    assert!(tree.contains("└── listener http"), "{tree}");
    assert!(tree.contains("├── healthmonitor hm"), "{tree}");
    assert!(tree.contains("member m1 192.0.2.1:8080"), "{tree}");
    let raw = json(&ok(&r, &["loadbalancer", "status", "web", "-f", "json"]));
    assert_eq!(raw["statuses"]["loadbalancer"]["id"], lb_id.as_str());

    // Batch set: exactly these members afterwards.
    ok(
        &r,
        &[
            "member",
            "batch",
            "set",
            "p",
            "--member",
            "address=192.0.2.9,protocol-port=81,weight=2",
            "--wait",
        ],
    );
    let members = ok(
        &r,
        &[
            "member",
            "list",
            "p",
            "-f",
            "value",
            "-c",
            "address",
            "-c",
            "protocol_port",
            "-c",
            "weight",
        ],
    );
    assert_eq!(members.trim(), "192.0.2.9 81 2");

    ok(
        &r,
        &[
            "loadbalancer",
            "set",
            "web",
            "--name",
            "web2",
            "--description",
            "front",
            "--wait",
        ],
    );
    assert_eq!(
        ok(
            &r,
            &[
                "loadbalancer",
                "show",
                &lb_id,
                "-f",
                "value",
                "-c",
                "description"
            ]
        )
        .trim(),
        "front"
    );
    let stats = json(&ok(&r, &["loadbalancer", "stats", "web2", "-f", "json"]));
    assert_eq!(stats["total_connections"], 0);
    json(&ok(&r, &["listener", "stats", "http", "-f", "json"]));
    assert!(ok(
        &r,
        &["amphora", "list", "-f", "value", "-c", "loadbalancer_id"]
    )
    .contains(&lb_id));
    ok(&r, &["loadbalancer", "failover", "web2", "--wait"]);

    // Quotas and providers.
    ok(
        &r,
        &[
            "quota",
            "set",
            &r.project,
            "--loadbalancer",
            "5",
            "--member",
            "50",
        ],
    );
    let q = json(&ok(&r, &["quota", "show", &r.project, "-f", "json"]));
    assert_eq!(
        (q["loadbalancer"].as_i64(), q["member"].as_i64()),
        (Some(5), Some(50))
    );
    ok(&r, &["quota", "reset", &r.project]);
    let d = json(&ok(&r, &["quota", "defaults", "-f", "json"]));
    let q = json(&ok(&r, &["quota", "show", &r.project, "-f", "json"]));
    assert_eq!(q["loadbalancer"], d["loadbalancer"]);
    assert!(ok(&r, &["provider", "list", "-f", "value", "-c", "name"]).contains("amphora"));

    // Delete, one object and then the cascade; --wait returns when it is gone.
    ok(&r, &["l7rule", "delete", "admin", &rules_id(&r), "--wait"]);
    let e = fails(&r, &["loadbalancer", "delete", "web2"]);
    assert!(
        e.contains("it has children") && e.ends_with("(HTTP 400)"),
        "{e}"
    );
    ok(
        &r,
        &["loadbalancer", "delete", "web2", "--cascade", "--wait"],
    );
    assert_eq!(ok(&r, &["loadbalancer", "list", "-f", "value"]), "");
}

fn rules_id(r: &Rocta) -> String {
    ok(r, &["l7rule", "list", "admin", "-f", "value", "-c", "id"])
        .trim()
        .to_string()
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() {
    let (_d, r) = Rocta::start();
    let e = fails(&r, &["loadbalancer", "show", "nope"]);
    assert_eq!(
        e,
        "rocta: No load balancer with a name or ID of 'nope' exists."
    );
    let e = fails(
        &r,
        &[
            "loadbalancer",
            "show",
            "6f3e2b1a-0000-4000-8000-000000000000",
        ],
    );
    assert!(e.contains("not found") && e.ends_with("(HTTP 404)"), "{e}");
    ok(
        &r,
        &[
            "loadbalancer",
            "create",
            "--name",
            "twin",
            "--vip-subnet-id",
            SUBNET,
            "--wait",
        ],
    );
    ok(
        &r,
        &[
            "loadbalancer",
            "create",
            "--name",
            "twin",
            "--vip-subnet-id",
            SUBNET,
            "--wait",
        ],
    );
    let e = fails(&r, &["loadbalancer", "show", "twin"]);
    assert!(
        e.contains("More than one load balancer exists with the name 'twin'"),
        "{e}"
    );
    let first_lb = ok(&r, &["loadbalancer", "list", "-f", "value", "-c", "id"]);
    let first_lb = first_lb.lines().next().unwrap();
    let e = fails(
        &r,
        &[
            "listener",
            "create",
            "--protocol",
            "HTTP",
            "--protocol-port",
            "70000",
            first_lb,
        ],
    );
    assert!(
        e.contains("Value should be lower or equal to 65535 (HTTP 400)"),
        "{e}"
    );
    let e = fails(&r, &["loadbalancer", "list", "-c", "nope"]);
    assert!(e.contains("no column \"nope\""), "{e}");
    let e = fails(&r, &["pool", "set", "whatever"]);
    assert!(e.contains("No pool with a name or ID of 'whatever'"), "{e}");

    // No project where the API needs one: the hint says how to give it.
    let o = Command::new(bin())
        .args(["loadbalancer", "create", "--vip-subnet-id", SUBNET])
        .env("ROCTA_URL", &r.url)
        .env_remove("ROCTA_PROJECT")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("Missing project ID") && e.contains("--project"),
        "{e}"
    );

    // Nothing listening.
    let o = Command::new(bin())
        .args([
            "loadbalancer",
            "list",
            "--os-endpoint",
            "http://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.starts_with("rocta: cannot reach http://127.0.0.1:1:"),
        "{e}"
    );

    // A usage error is clap's (exit 2), not a request.
    let o = Command::new(bin())
        .args(["listener", "create", "web"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn wait_fails_clearly_when_the_change_goes_to_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = Rocta::start_in(
        dir.path(),
        "serve",
        common::TEST_CONFIG,
        &[("ROCTA_FAIL_AT", "child:apply_config")],
    );
    ok(
        &r,
        &[
            "loadbalancer",
            "create",
            "--name",
            "web",
            "--vip-subnet-id",
            SUBNET,
            "--wait",
        ],
    );
    let o = run(
        &r,
        &[
            "listener",
            "create",
            "--protocol",
            "HTTP",
            "--protocol-port",
            "80",
            "web",
            "--wait",
        ],
    );
    assert!(!o.ok, "{}", o.stdout);
    let last = o
        .stderr
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.starts_with("rocta: listener ") && last.contains("went to provisioning_status ERROR"),
        "{}",
        o.stderr
    );
}

/// On a terminal `--wait` draws a spinner (redrawn in place) instead of one line per status.
#[test]
fn wait_spins_on_a_terminal() {
    let (_d, r) = Rocta::start();
    let cmd = format!(
        "{} loadbalancer create --vip-subnet-id {SUBNET} --wait -f value -c provisioning_status",
        bin()
    );
    // util-linux `script` runs the command on a pseudo-terminal.
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("ROCTA_URL", &r.url)
        .env("ROCTA_PROJECT", &r.project)
        .output()
        .expect("script (util-linux)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("\u{1b}[2K"), "redrawn in place: {out:?}");
    assert!(out.contains(": ACTIVE ("), "{out:?}");
    assert!(out.trim_end().ends_with("ACTIVE"), "{out:?}");
}
