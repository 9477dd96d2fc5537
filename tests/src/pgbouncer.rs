//! A throwaway PgBouncer (Debian's `pgbouncer`, or `PGBOUNCER_BIN`) in front of a test's
//! PostgreSQL, in transaction pooling mode with fewer server connections than clients, so that
//! consecutive transactions of one client land on different servers.

use crate::postgres::{cluster_dir, wait_until_connects};
use crate::process::{running_as_root, Supervised};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A PgBouncer of one test's own.
#[derive(Debug)]
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    server: Option<Supervised>,
}

/// The settings: every database of the server under its own name, as `postgres`; servers are
/// handed out round robin, which makes a client's next transaction likely to find another one.
fn ini(listen: u16, postgres_port: u16, dir: &Path, servers: u32) -> String {
    let dir = dir.display();
    format!(
        "[databases]\n\
         * = host=127.0.0.1 port={postgres_port} user=postgres\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {listen}\n\
         unix_socket_dir =\n\
         auth_type = any\n\
         admin_users = postgres\n\
         pool_mode = transaction\n\
         default_pool_size = {servers}\n\
         max_client_conn = 2000\n\
         server_round_robin = 1\n\
         ignore_startup_parameters = extra_float_digits\n\
         stats_period = 1\n\
         logfile = {dir}/pgbouncer.log\n\
         pidfile = {dir}/pgbouncer.pid\n"
    )
}

impl PgBouncer {
    /// Starts one in front of the PostgreSQL on `postgres_port`, with `servers` server
    /// connections per database.
    pub async fn start(postgres_port: u16, servers: u32) -> Result<Self> {
        let bin = std::env::var_os("PGBOUNCER_BIN").unwrap_or_else(|| "/usr/sbin/pgbouncer".into());
        // It refuses to run as root; its files are the `postgres` user's, as the server's are.
        let dir = cluster_dir()?;
        for attempt in 0..5 {
            let port = crate::free_port();
            let config = dir.join("pgbouncer.ini");
            std::fs::write(&config, ini(port, postgres_port, &dir, servers))
                .context("writing pgbouncer.ini")?;
            let log = dir.join(format!("pgbouncer-{attempt}.out"));
            let server = Supervised::spawn(
                Path::new(&bin),
                &[config.to_string_lossy().into_owned()],
                running_as_root().then_some("postgres"),
                dir.join("supervised.pid"),
                &dir,
                &log,
            )?;
            let mut b = Self {
                dir: dir.clone(),
                port,
                server: Some(server),
            };
            if b.wait_ready(Duration::from_secs(10)).await.is_ok() {
                return Ok(b);
            }
            let text = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
            b.stop();
            if !text.contains("Address already in use") {
                bail!("pgbouncer did not start:\n{text}");
            }
        }
        bail!("pgbouncer found no free port")
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let url = self.url("postgres");
        wait_until_connects(&url, &mut self.server, within).await
    }

    /// A URL for `database` through the pooler.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The transactions PgBouncer has passed on for `database` (`SHOW STATS`, through `psql`:
    /// the admin console speaks only the simple query protocol).
    pub fn transactions(&self, database: &str) -> Result<u64> {
        let out = std::process::Command::new("psql")
            .args(["-X", "-A", "-t", "-F", "\t", "-c", "SHOW STATS"])
            .arg(self.url("pgbouncer"))
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("SHOW STATS: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&database))
            .and_then(|cols| cols.get(1)?.parse().ok())
            .with_context(|| format!("no stats for {database} in:\n{text}"))
    }

    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop(Duration::from_secs(5));
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
