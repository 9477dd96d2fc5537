//! The aggregator binary as a process of its own, for tests that must kill it for real, stop it
//! with SIGTERM, or measure it from `/proc` (resident memory, descriptors, sockets).

use std::collections::HashMap;
use std::time::Duration;

/// A running `scoreboard-aggregator serve`, killed when dropped.
#[derive(Debug)]
pub struct AggregatorProcess {
    child: tokio::process::Child,
    pid: u32,
    /// Where it serves, e.g. `http://127.0.0.1:4000`.
    pub base: String,
    /// Its Prometheus endpoint.
    pub metrics: String,
}

impl AggregatorProcess {
    /// Starts `bin serve` with exactly `vars` (nothing inherited), which must name `PORT` and
    /// `METRICS_PORT` (not 0: the caller needs to know them) and may name `BIND_ADDR`.
    pub fn spawn(bin: &str, vars: &HashMap<String, String>) -> Self {
        let host = vars.get("BIND_ADDR").map_or("127.0.0.1", String::as_str);
        let child = tokio::process::Command::new(bin)
            .arg("serve")
            .env_clear()
            .envs(vars)
            .stdout(std::process::Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("the aggregator binary starts");
        let pid = child.id().expect("a running child has a pid");
        Self {
            child,
            pid,
            base: format!("http://{host}:{}", vars["PORT"]),
            metrics: format!("http://{host}:{}/metrics", vars["METRICS_PORT"]),
        }
    }

    /// Starts it and waits until `/health/ready` answers 200.
    pub async fn start(bin: &str, vars: &HashMap<String, String>) -> Self {
        let mut p = Self::spawn(bin, vars);
        p.ready().await;
        p
    }

    /// Waits until `/health/ready` answers 200; panics after 30 s or when the process exits.
    pub async fn ready(&mut self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a client");
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{}/health/ready", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("the aggregator at {} exited: {exit}", self.base);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the aggregator at {} did not become ready", self.base);
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGKILL, and waits for the process to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM; returns whether it exited 0 within `within`, and how long it took.
    pub async fn terminate(&mut self, within: Duration) -> (bool, Duration) {
        let started = std::time::Instant::now();
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(exit)) => (exit.success(), started.elapsed()),
            _ => (false, started.elapsed()),
        }
    }

    /// Resident memory, descriptors and sockets, from `/proc`.
    pub fn stats(&self) -> ProcStats {
        ProcStats::of(self.pid)
    }
}

/// What `/proc` says about one process.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProcStats {
    pub rss_kib: u64,
    pub fds: usize,
    /// Descriptors that are sockets: listeners, client connections, pool connections.
    pub sockets: usize,
}

impl ProcStats {
    /// Zeros when the process is gone.
    pub fn of(pid: u32) -> Self {
        let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        let (mut fds, mut sockets) = (0, 0);
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for entry in dir.flatten() {
                fds += 1;
                if std::fs::read_link(entry.path())
                    .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                {
                    sockets += 1;
                }
            }
        }
        Self {
            rss_kib,
            fds,
            sockets,
        }
    }
}
