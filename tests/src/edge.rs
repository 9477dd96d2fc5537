//! The edge worker on a random port, for end-to-end tests and measurements: under `wrangler
//! dev` (workerd behind wrangler's dev proxy), or in workerd directly through
//! `scripts/edge-workerd.mjs` (Miniflare, no proxy: what production runs). The worker must
//! have been built (`scripts/build-edge`; `scripts/test` does it first).

use crate::hosts::HostsFile;
use crate::process::{scratch_dir, Supervised};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How the worker is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runner {
    /// `wrangler dev`: what a developer runs, with its dev proxy in front.
    WranglerDev,
    /// workerd alone, with the same bindings (read from `wrangler.toml`).
    Workerd,
}

/// A running edge worker.
#[derive(Debug)]
pub struct EdgeServer {
    runner: Runner,
    port: u16,
    dir: PathBuf,
    server: Option<Supervised>,
    /// What it was started with, so that `restart` starts the same worker again.
    vars: Vec<(String, String)>,
    hosts: Option<PathBuf>,
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
        Self::start_inner(Runner::WranglerDev, vars, None).await
    }

    /// Like [`EdgeServer::start_for_load`] (no hosts file), in workerd directly.
    pub async fn start_in_workerd(aggregator: &str) -> Result<Self> {
        Self::start_inner(Runner::Workerd, &Self::load_vars(aggregator), None).await
    }

    /// The worker in front of `aggregator` with the test secrets (forwarding, sessions,
    /// action tokens) and `extra` variables (catalog, limits, ...).
    pub async fn in_front_of(aggregator: &str, extra: &[(&str, &str)]) -> Result<Self> {
        Self::start_inner(
            Runner::WranglerDev,
            &Self::test_vars(aggregator, extra),
            None,
        )
        .await
    }

    fn test_vars<'a>(aggregator: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        use crate::stack::{ACTION_SECRET, EDGE_SECRET, JWT_SECRET};
        let mut vars = vec![
            ("AGGREGATOR_URL", aggregator),
            ("EDGE_FORWARD_SECRET", EDGE_SECRET),
            ("JWT_SECRET", JWT_SECRET),
            ("ACTION_TOKEN_SECRET", ACTION_SECRET),
        ];
        vars.extend_from_slice(extra);
        vars
    }

    /// The worker in front of `aggregator` with the test secrets, no practical per-player
    /// limit and a 1 s ping: what the load, fault and soak tests need. With `hosts`, it
    /// resolves host names with that file instead of `/etc/hosts`: `wrangler dev` runs in a
    /// mount namespace of its own where the file is bind-mounted over `/etc/hosts` (as root,
    /// or else in a user namespace of its own: unprivileged user namespaces must be allowed).
    pub async fn start_for_load(aggregator: &str, hosts: Option<&HostsFile>) -> Result<Self> {
        let vars = Self::load_vars(aggregator);
        Self::start_inner(Runner::WranglerDev, &vars, hosts.map(HostsFile::path)).await
    }

    fn load_vars(aggregator: &str) -> Vec<(&str, &str)> {
        Self::test_vars(
            aggregator,
            &[
                ("RATE_LIMIT_SCORE_UPDATE", "1000000"),
                ("SSE_PING_INTERVAL", "1000"),
            ],
        )
    }

    async fn start_inner(
        runner: Runner,
        vars: &[(&str, &str)],
        hosts: Option<&Path>,
    ) -> Result<Self> {
        let mut edge = Self {
            runner,
            port: crate::free_port(),
            dir: scratch_dir("edge")?,
            server: None,
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            hosts: hosts.map(Path::to_owned),
        };
        // The ports come from `free_port`, and another process may take one of them before
        // wrangler or workerd binds it (the public port, or the inspector's): a start that
        // lost that race is tried again on fresh ports.
        for attempt in 1..=3 {
            edge.spawn()?;
            match edge.wait_ready(Duration::from_secs(90)).await {
                Ok(()) => return Ok(edge),
                Err(_) if attempt < 3 && edge.lost_a_port() => {
                    edge.stop();
                    edge.port = crate::free_port();
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    fn lost_a_port(&self) -> bool {
        self.log()
            .is_ok_and(|l| l.contains("Address already in use"))
    }

    /// Kills the worker's runtime (`SIGKILL` to workerd: requests in flight end there, as in
    /// a crash or a redeploy of the machine) and starts the same worker again on the same port
    /// with the same Durable Object storage.
    pub async fn crash_and_restart(&mut self) -> Result<()> {
        if let Some(pid) = self.workerd_pid() {
            crate::process::signal(pid, "KILL");
        }
        self.stop();
        self.spawn()?;
        self.wait_ready(Duration::from_secs(90)).await
    }

    fn spawn(&mut self) -> Result<()> {
        if self.runner == Runner::Workerd {
            return self.spawn_workerd();
        }
        let root = repo_root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        if !wrangler.exists() || !root.join("edge-worker/build/worker/shim.mjs").exists() {
            bail!("the edge worker is not built: run scripts/build-edge");
        }
        let (dir, port, hosts) = (&self.dir, self.port, self.hosts.as_deref());
        let mut args: Vec<String> = Vec::new();
        if let Some(hosts) = hosts {
            if !crate::process::running_as_root() {
                // Unprivileged: a user namespace of its own, where it may mount.
                args.extend(["--user".to_owned(), "--map-root-user".to_owned()]);
            }
            for a in [
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                // Same pid all the way down (exec), so the supervisor still stops the server.
                r#"mount --bind "$0" /etc/hosts && exec env "$@""#,
                &hosts.to_string_lossy(),
            ] {
                args.push(a.to_owned());
            }
        }
        args.extend(
            [
                "WRANGLER_SEND_METRICS=false",
                "CLOUDFLARE_CF_FETCH_ENABLED=false",
                "WRANGLER_HIDE_BANNER=true",
                "CI=true",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
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
        for (k, v) in &self.vars {
            args.push("--var".into());
            args.push(format!("{k}:{v}"));
        }
        let program = if hosts.is_some() { "unshare" } else { "env" };
        let server = Supervised::spawn(
            Path::new(program),
            &args,
            None,
            dir.join("server.pid"),
            dir,
            &dir.join("wrangler.log"),
        )?;
        self.server = Some(server);
        Ok(())
    }

    fn spawn_workerd(&mut self) -> Result<()> {
        let root = repo_root();
        if !root.join("edge-worker/build/index.js").exists() {
            bail!("the edge worker is not built: run scripts/build-edge");
        }
        let mut args = vec![
            root.join("scripts/edge-workerd.mjs")
                .to_string_lossy()
                .into_owned(),
            "--port".to_owned(),
            self.port.to_string(),
            "--persist-to".to_owned(),
            self.dir.join("state").to_string_lossy().into_owned(),
        ];
        for (k, v) in &self.vars {
            args.push("--var".into());
            args.push(format!("{k}:{v}"));
        }
        let dir = &self.dir;
        self.server = Some(Supervised::spawn(
            Path::new("node"),
            &args,
            None,
            dir.join("server.pid"),
            dir,
            &dir.join("wrangler.log"),
        )?);
        Ok(())
    }

    /// Where the worker keeps its Durable Objects' storage (the same across restarts).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.join("state")
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

    /// The `workerd` process that runs the worker and its Durable Objects, to measure it.
    /// `wrangler dev` starts two: one for its own dev proxy, which owns the public port and
    /// relays every request, and this one (the only one with an inspector).
    pub fn workerd_pid(&self) -> Option<u32> {
        if self.runner == Runner::Workerd {
            // scripts/edge-workerd.mjs says which workerd it started.
            let log = self.log().ok()?;
            let line = log.lines().find(|l| l.starts_with("edge-workerd: ready"))?;
            return line
                .rsplit("workerd pid ")
                .next()?
                .trim_end_matches(')')
                .parse()
                .ok();
        }
        self.workerd_with(true)
    }

    /// The `workerd` of wrangler's dev proxy: local tooling in front of the worker, absent in
    /// production, measured apart so that its buffers are not counted as the worker's.
    pub fn dev_proxy_pid(&self) -> Option<u32> {
        self.workerd_with(false)
    }

    fn workerd_with(&self, inspector: bool) -> Option<u32> {
        let wrangler = self.server.as_ref()?.server_pid()?;
        crate::process::descendants_named(wrangler, "workerd")
            .into_iter()
            .find(|p| {
                std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c).contains("--inspector-addr") == inspector
                })
            })
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

/// Whether the edge worker answers on `port`: its `/health` (whatever its status) names the
/// `edge` check. Any HTTP answer is not enough: another test's server may have taken the port
/// between `free_port` and wrangler binding it, and the tests would then talk to that server.
async fn answers_http(port: u16) -> bool {
    let ask = async {
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = r.json().await.ok()?;
        Some(body["checks"]["edge"].is_string())
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
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
