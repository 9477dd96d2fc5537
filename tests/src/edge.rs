//! The edge worker under `wrangler dev` (workerd), on a random port, for end-to-end tests.
//! The worker must have been built (`scripts/build-edge`; `scripts/test` does it first).

use crate::process::{scratch_dir, Supervised};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A running `wrangler dev`.
#[derive(Debug)]
pub struct EdgeServer {
    port: u16,
    dir: PathBuf,
    server: Option<Supervised>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness lives one level below the root")
        .to_owned()
}

impl EdgeServer {
    /// Starts the worker with `vars` (name, value) overriding `wrangler.toml`'s.
    pub async fn start(vars: &[(&str, &str)]) -> Result<Self> {
        let root = repo_root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        if !wrangler.exists() || !root.join("edge-worker/build/worker/shim.mjs").exists() {
            bail!("the edge worker is not built: run scripts/build-edge");
        }
        let dir = scratch_dir("edge")?;
        let port = crate::free_port();
        let mut args: Vec<String> = [
            "WRANGLER_SEND_METRICS=false",
            "CLOUDFLARE_CF_FETCH_ENABLED=false",
            "WRANGLER_HIDE_BANNER=true",
            "CI=true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("WRANGLER_LOG_PATH={}", dir.join("logs").display()));
        args.push(wrangler.to_string_lossy().into_owned());
        for a in [
            "dev",
            "--config",
            &root.join("wrangler.toml").to_string_lossy(),
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--persist-to",
            &dir.join("state").to_string_lossy(),
            "--show-interactive-dev-session=false",
            // Each instance its own inspector port: the default 9229 is shared by all.
            "--inspector-port",
            &crate::free_port().to_string(),
        ] {
            args.push(a.to_owned());
        }
        for (k, v) in vars {
            args.push("--var".into());
            args.push(format!("{k}:{v}"));
        }
        let server = Supervised::spawn(
            Path::new("env"),
            &args,
            None,
            dir.join("server.pid"),
            &dir,
            &dir.join("wrangler.log"),
        )?;
        let mut edge = Self {
            port,
            dir,
            server: Some(server),
        };
        edge.wait_ready(Duration::from_secs(90)).await?;
        Ok(edge)
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            // The port opens before the worker is loaded: wait for a real HTTP answer.
            if answers_http(self.port).await {
                return Ok(());
            }
            let exited = self.server.as_mut().is_none_or(|s| s.has_exited());
            if exited || Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.join("wrangler.log")).unwrap_or_default();
                bail!("wrangler dev did not come up on port {}:\n{log}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What wrangler and the worker printed so far (the worker's JSON log lines among it).
    pub fn log(&self) -> Result<String> {
        std::fs::read_to_string(self.dir.join("wrangler.log")).context("reading the wrangler log")
    }

    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop(Duration::from_secs(15));
        }
    }
}

/// Whether something on `port` answers an HTTP request (any status).
async fn answers_http(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET /__ready HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"HTTP/1.1 "))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

impl Drop for EdgeServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
