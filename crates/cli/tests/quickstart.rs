//! The README's quick start, run as written: the `quickstart:serve` block starts rocta (here on
//! an ephemeral port, given to the client block through `ROCTA_URL`, so a rocta already running
//! on 9876 does not interfere), then the `quickstart:client` block runs in bash with the `rocta`
//! under test first on PATH. Both backends must answer through the VIP. It runs as the README's
//! user does, as root: amphorae in namespaces on the default networks (rocta-mgmt, rocta-public),
//! which it removes at the end.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::{bin, Rocta};

/// The shell block after `<!-- quickstart:<name> -->` in the README.
fn block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- quickstart:{name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README has no {marker}"))
        .1;
    let body = after
        .split_once("```sh\n")
        .expect("a ```sh block after the marker")
        .1;
    body.split_once("```")
        .expect("the block ends")
        .0
        .to_string()
}

/// Ends the background web servers the client block starts (its whole process group).
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.0))
            .status();
    }
}

#[test]
fn the_readme_quick_start_works_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let serve = block(&readme, "serve");
    assert_eq!(
        serve.trim(),
        "cargo run --release --bin rocta -- serve",
        "the test starts `rocta serve` itself; keep the README's serve block in step with it"
    );
    let client = block(&readme, "client");

    let dir = tempfile::tempdir().unwrap();
    // As the README's user (root): the default drivers, amphorae in namespaces on the
    // networks `rocta serve` builds, removed when the test ends.
    let _networks = common::netns::NetnsEnv::defaults(dir.path());
    let rocta = Rocta::start_default(dir.path());
    let _reaper = common::Reaper::new(dir.path());
    let bin_dir = std::path::Path::new(bin()).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &client])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("ROCTA_URL", &rocta.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash");
    let _group = Group(child.id() as i32);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the quick start failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("backend A"), "{stdout}");
    assert!(stdout.contains("backend B"), "{stdout}");
    assert!(stdout.contains("└── member 198.19.0.1:8002"), "{stdout}");
    assert!(
        stderr.contains("ACTIVE"),
        "--wait reports progress: {stderr}"
    );
}
