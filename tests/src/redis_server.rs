//! Throwaway Redis: a server per test (they start in milliseconds), stoppable and restartable
//! on the same port for the tests where Redis goes away; or a unique key prefix on `REDIS_URL`.

use crate::process::{scratch_dir, Supervised};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A Redis server of one test's own.
#[derive(Debug)]
pub struct RedisServer {
    dir: PathBuf,
    port: u16,
    server: Option<Supervised>,
    /// Arguments beyond the throwaway defaults (a cluster node's), kept for restarts.
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` (or `REDIS_SERVER_BIN`) on a free port, persisting nothing.
    pub async fn start() -> Result<Self> {
        Self::start_with(Vec::new()).await
    }

    /// The same with `extra` arguments, each a separate word (`--cluster-enabled`, `yes`).
    pub(crate) async fn start_with(extra: Vec<String>) -> Result<Self> {
        let mut s = Self {
            dir: scratch_dir("redis")?,
            port: 0,
            server: None,
            extra,
        };
        s.start_again().await?;
        Ok(s)
    }

    /// (Re)starts the server: a free port the first time, the same port after.
    pub async fn start_again(&mut self) -> Result<()> {
        let fresh = self.port == 0;
        let bin = std::env::var_os("REDIS_SERVER_BIN").unwrap_or_else(|| "redis-server".into());
        for attempt in 0..5 {
            if fresh {
                self.port = crate::free_port();
            }
            let mut args: Vec<String> = vec![
                "--port".into(),
                self.port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
                "--dir".into(),
                self.dir.to_string_lossy().into_owned(),
                "--daemonize".into(),
                "no".into(),
            ];
            args.extend(self.extra.iter().cloned());
            let log = self.dir.join(format!("redis-{attempt}.log"));
            self.server = Some(Supervised::spawn(
                Path::new(&bin),
                &args,
                None,
                self.dir.join("server.pid"),
                &self.dir,
                &log,
            )?);
            if self.wait_ready(Duration::from_secs(10)).await.is_ok() {
                return Ok(());
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            self.stop();
            if !fresh || !text.contains("Address already in use") {
                bail!("redis-server did not start:\n{text}");
            }
        }
        bail!("redis-server found no free port")
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if ping(&self.url()).await.is_ok() {
                return Ok(());
            }
            if self.server.as_mut().is_none_or(|s| s.has_exited()) || Instant::now() > deadline {
                bail!("redis-server is not answering on port {}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Shuts the server down (its data is gone: nothing is persisted).
    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop(Duration::from_secs(10));
        }
    }

    /// `kill -9`, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.kill();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is still there (not stopped, killed or crashed).
    pub fn is_running(&mut self) -> bool {
        self.server.as_mut().is_some_and(|s| !s.has_exited())
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn ping(url: &str) -> Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    if pong != "PONG" {
        bail!("unexpected PING answer {pong:?}");
    }
    Ok(())
}

/// Redis for one test: a URL and a key prefix no other test uses.
#[derive(Debug)]
pub struct TestRedis {
    pub url: String,
    pub key_prefix: String,
    /// The server, when the harness started one (no `REDIS_URL`).
    pub server: Option<RedisServer>,
}

/// A Redis for one test: its own server, or a unique key prefix on `REDIS_URL`.
pub async fn fresh_redis() -> Result<TestRedis> {
    let key_prefix = format!("test:{}:", crate::random_suffix(12));
    if let Ok(url) = std::env::var("REDIS_URL") {
        ping(&url).await.context("REDIS_URL does not answer")?;
        return Ok(TestRedis {
            url,
            key_prefix,
            server: None,
        });
    }
    let server = RedisServer::start().await?;
    Ok(TestRedis {
        url: server.url(),
        key_prefix,
        server: Some(server),
    })
}
