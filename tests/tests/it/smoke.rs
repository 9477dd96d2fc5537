//! `deploy/smoke`, the pipeline's check of a deployed base URL, run against the local stack:
//! the worker in workerd, an aggregator, PostgreSQL and Redis.

use crate::support::{edge_with, stack};
use std::path::Path;

async fn smoke(base: &str) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    tokio::process::Command::new("python3")
        .arg("deploy/smoke")
        .arg(base)
        .current_dir(root)
        .output()
        .await
        .expect("python3 runs")
}

/// The smoke script passes against a healthy stack (health, page, guest scores, SSE delivers
/// the update, replay refused) and fails, saying why, once the aggregator is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_script_passes_on_a_healthy_stack_and_fails_without_the_aggregator() {
    let (_db, _redis, (agg, stop, task)) = stack().await;
    let edge = edge_with(&agg, &[]).await;

    let out = smoke(&edge.url()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("smoke test passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in ["health", "SSE stream delivered", "replay refused"] {
        assert!(stdout.contains(step), "no {step:?} step in:\n{stdout}");
    }

    let _ = stop.send(());
    let _ = task.await;
    let out = smoke(&edge.url()).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("FAIL GET /health answered 503"),
        "{stderr}"
    );
}
