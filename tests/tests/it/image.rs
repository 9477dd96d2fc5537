//! The aggregator's container image, rehearsed without Docker (there is none here):
//! `deploy/rehearse-image` checks the Dockerfile's promises, runs its build stage (`cargo build
//! --release --locked` from the filtered build context) and serves the result as the image's
//! non-root user, whose `healthcheck` must pass.

use scoreboard_tests::fresh_database;
use std::path::Path;

/// The Dockerfile's build stage builds with `--locked` from what `.dockerignore` lets in, and
/// the binary serves as uid 10001 with a passing HEALTHCHECK command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_builds_locked_and_serves_as_a_non_root_user() {
    let _heavy = scoreboard_tests::heavy().await;
    let db = fresh_database().await.unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tokio::process::Command::new("python3")
        .arg("deploy/rehearse-image")
        .arg("--run")
        .arg(&db.url)
        .current_dir(root)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("build stage passed"), "{stdout}");
    assert!(
        stdout.contains("serve ran as uid 10001; healthcheck passed")
            || (!is_root() && stdout.contains("healthcheck passed")),
        "{stdout}"
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
