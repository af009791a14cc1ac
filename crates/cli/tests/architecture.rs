//! The crate map in ARCHITECTURE.md is the law: every dependency edge between workspace crates
//! (normal and build dependencies; tests may reach further) must be listed there.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../ARCHITECTURE.md"
    ))
    .unwrap();
    let block = doc
        .split("<!-- allowed-edges -->")
        .nth(1)
        .and_then(|b| b.split("<!-- /allowed-edges -->").next())
        .expect("ARCHITECTURE.md lacks the allowed-edges block");
    let mut m = BTreeMap::new();
    for line in block.lines() {
        let line = line.trim().trim_start_matches("- ");
        if let Some((from, to)) = line.split_once("->") {
            let deps = to
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty() && s != "(none)")
                .collect();
            m.insert(from.trim().to_string(), deps);
        }
    }
    m
}

#[test]
fn crate_edges_match_architecture_md() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let allowed = allowed();
    let members: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let mut bad = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let Some(ok) = allowed.get(name) else {
            bad.push(format!("{name} is not in the map"));
            continue;
        };
        for d in p["dependencies"].as_array().unwrap() {
            let dep = d["name"].as_str().unwrap();
            if members.contains(dep) && d["kind"].as_str() != Some("dev") && !ok.contains(dep) {
                bad.push(format!("{name} -> {dep}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "edges not allowed by ARCHITECTURE.md: {bad:?}"
    );
}
