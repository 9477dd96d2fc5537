//! A throwaway HAProxy (Debian's `haproxy`, or `HAPROXY_BIN`) on a random port in front of
//! aggregator instances, with the configuration the project ships
//! (`deploy/haproxy/aggregators.cfg`).

use crate::process::{scratch_dir, Supervised};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An HAProxy of one test's own.
#[derive(Debug)]
pub struct HaProxy {
    dir: PathBuf,
    port: u16,
    server: Option<Supervised>,
}

/// The shipped configuration (`deploy/haproxy/aggregators.cfg`) on `listen`, for `backends`.
fn config(listen: u16, backends: &[String]) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!("  server aggregator-{i} {b} check\n"))
        .collect();
    include_str!("../../deploy/haproxy/aggregators.cfg")
        .replace("{listen}", &format!("127.0.0.1:{listen}"))
        .replace("{servers}", &servers)
}

impl HaProxy {
    /// Starts one in front of `backends` (`host:port` each), once every backend passes its
    /// check.
    pub async fn start(backends: &[String]) -> Result<Self> {
        let bin = std::env::var_os("HAPROXY_BIN").unwrap_or_else(|| "/usr/sbin/haproxy".into());
        let dir = scratch_dir("haproxy")?;
        for attempt in 0..5 {
            let port = crate::free_port();
            let cfg = dir.join("haproxy.cfg");
            std::fs::write(&cfg, config(port, backends)).context("writing haproxy.cfg")?;
            let log = dir.join(format!("haproxy-{attempt}.log"));
            let args = ["-db", "-f"].map(String::from).into_iter();
            let args: Vec<String> = args.chain([cfg.to_string_lossy().into_owned()]).collect();
            let server = Supervised::spawn(
                Path::new(&bin),
                &args,
                None,
                dir.join("supervised.pid"),
                &dir,
                &log,
            )?;
            let mut h = Self {
                dir: dir.clone(),
                port,
                server: Some(server),
            };
            if h.wait_ready(Duration::from_secs(10)).await.is_ok() {
                return Ok(h);
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            h.stop();
            if !text.contains("cannot bind") && !text.contains("Address already in use") {
                bail!("haproxy did not start:\n{text}");
            }
        }
        bail!("haproxy found no free port")
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let http = reqwest::Client::new();
        loop {
            let ok = http
                .get(format!("{}/health/ready", self.url()))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return Ok(());
            }
            if self.server.as_mut().is_none_or(|s| s.has_exited()) || Instant::now() > deadline {
                bail!("haproxy is not answering on port {}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop(Duration::from_secs(5));
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
