//! Throwaway PostgreSQL: one cluster per test process (initdb is the slow part), one fresh
//! database per test; or a cluster of a test's own when it needs to stop and restart it.

use crate::process::{run, running_as_root, scratch_dir, Supervised};
use anyhow::{bail, Context, Result};
use sqlx::{Connection, Executor, PgConnection};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// A PostgreSQL cluster in a temp dir, on a random port, owned by this test process.
#[derive(Debug)]
pub struct PgServer {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    server: Option<Supervised>,
    /// fsync on (benchmarks) or off (tests, where durability is not what is measured).
    durable: bool,
}

/// Where the server binaries are: `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else
/// whatever `initdb` is on `PATH`.
fn pg_bin() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .context("looking for initdb")?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match Path::new(&path).parent() {
        Some(dir) if out.status.success() => Ok(dir.to_owned()),
        _ => bail!("PostgreSQL server binaries not found: install `postgresql` or set PG_BIN"),
    }
}

/// `program` run as the `postgres` user when we are root (the server refuses to run as root,
/// and its files must be that user's).
fn postgres_command(program: &Path) -> Command {
    if !running_as_root() {
        return Command::new(program);
    }
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        "postgres",
        "--regid",
        "postgres",
        "--init-groups",
        "--",
    ])
    .arg(program);
    c
}

/// A new scratch dir for a cluster, the `postgres` user's when we are root.
pub(crate) fn cluster_dir() -> Result<PathBuf> {
    let dir = scratch_dir("pg")?;
    if running_as_root() {
        run(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir),
            "chown of the PostgreSQL scratch dir",
        )?;
    }
    Ok(dir)
}

/// Waits until `url` accepts a connection, while `server` (the process that should answer
/// it) runs, for at most `within`.
pub(crate) async fn wait_until_connects(
    url: &str,
    server: &mut Option<Supervised>,
    within: Duration,
) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(c) = PgConnection::connect(url).await {
            let _ = c.close().await;
            return Ok(());
        }
        if server.as_mut().is_none_or(|s| s.has_exited()) || Instant::now() > deadline {
            bail!("nothing answers {url}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl PgServer {
    /// initdb into a new temp dir and start the server on a free port, fsync off.
    pub async fn start() -> Result<Self> {
        Self::start_with(false).await
    }

    /// The same with fsync and full-page writes on, as in production (for benchmarks).
    pub async fn start_durable() -> Result<Self> {
        Self::start_with(true).await
    }

    async fn start_with(durable: bool) -> Result<Self> {
        let bin = pg_bin()?;
        let dir = cluster_dir()?;
        let data = dir.join("data");
        let mut initdb = postgres_command(&bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(&mut initdb, "initdb")?;
        let mut server = Self {
            dir,
            port: 0,
            bin,
            server: None,
            durable,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started on a port of its own and
    /// answering reads; it has the primary's settings (fsync and all).
    pub async fn standby_of(primary: &PgServer) -> Result<Self> {
        let dir = cluster_dir()?;
        let mut backup = postgres_command(&primary.bin.join("pg_basebackup"));
        backup.arg("-D").arg(dir.join("data")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port.to_string(),
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ]);
        run(&mut backup, "pg_basebackup")?;
        let mut server = Self {
            dir,
            port: 0,
            bin: primary.bin.clone(),
            server: None,
            durable: primary.durable,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// Makes a standby a primary of its own (`pg_promote`), waiting until it takes writes.
    pub async fn promote(&self) -> Result<()> {
        let mut c = PgConnection::connect(&self.url("postgres")).await?;
        let done: bool = sqlx::query_scalar("SELECT pg_promote(true, 60)")
            .fetch_one(&mut c)
            .await
            .context("pg_promote")?;
        c.close().await.ok();
        if !done {
            bail!(
                "the standby on port {} did not promote within 60 s",
                self.port
            );
        }
        Ok(())
    }

    /// (Re)starts the server process on a free port the first time, the same port after.
    pub async fn start_again(&mut self) -> Result<()> {
        let fresh = self.port == 0;
        for attempt in 0..5 {
            if fresh {
                self.port = crate::free_port();
            }
            let fsync = if self.durable { "on" } else { "off" };
            let args: Vec<String> = [
                "-D",
                &self.dir.join("data").to_string_lossy(),
                "-p",
                &self.port.to_string(),
                "-k",
                &self.dir.to_string_lossy(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                &format!("fsync={fsync}"),
                "-c",
                &format!("full_page_writes={fsync}"),
                "-c",
                "max_connections=400",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let log = self.dir.join(format!("postgres-{attempt}.log"));
            let server = Supervised::spawn(
                &self.bin.join("postgres"),
                &args,
                running_as_root().then_some("postgres"),
                self.dir.join("server.pid"),
                &self.dir,
                &log,
            )?;
            self.server = Some(server);
            if self.wait_ready(Duration::from_secs(30)).await.is_ok() {
                return Ok(());
            }
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(mut s) = self.server.take() {
                s.stop(Duration::from_secs(5));
            }
            if !fresh || !log_text.contains("could not bind") {
                bail!("PostgreSQL did not start:\n{log_text}");
            }
        }
        bail!("PostgreSQL found no free port")
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let url = self.url("postgres");
        wait_until_connects(&url, &mut self.server, within).await
    }

    /// A fast shutdown (`SIGINT`), waiting for it. The data stays for `start_again`.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop(Duration::from_secs(20));
        }
    }

    /// `kill -9` of the postmaster, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.kill();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Creates `database` on this server; its URL.
    pub async fn create_database(&self, database: &str) -> Result<String> {
        let mut admin = PgConnection::connect(&self.url("postgres"))
            .await
            .context("connecting to create a database")?;
        admin
            .execute(format!("CREATE DATABASE \"{database}\"").as_str())
            .await
            .with_context(|| format!("creating database {database}"))?;
        admin.close().await.ok();
        Ok(self.url(database))
    }

    /// A URL for `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The per-process server. Statics are never dropped: its supervisor stops it and removes its
/// directory when the process goes away.
struct Shared {
    base_url: String,
    _server: Option<PgServer>,
}

static SHARED: OnceCell<Shared> = OnceCell::const_new();

async fn shared() -> Result<&'static Shared> {
    SHARED
        .get_or_try_init(|| async {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                return Ok(Shared {
                    base_url: url,
                    _server: None,
                });
            }
            let server = PgServer::start().await?;
            Ok(Shared {
                base_url: server.url("postgres"),
                _server: Some(server),
            })
        })
        .await
}

/// An empty database made for one test.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    pub name: String,
    /// Set when the database lives on a server we do not own (`DATABASE_URL`), so it must be
    /// dropped at the end; databases on the throwaway server go with it.
    admin_url: Option<String>,
}

/// Creates a fresh database for one test.
pub async fn fresh_database() -> Result<TestDatabase> {
    let shared = shared().await?;
    let name = format!("test_{}", crate::random_suffix(16));
    let mut admin = PgConnection::connect(&shared.base_url)
        .await
        .context("connecting to the test PostgreSQL")?;
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .context("creating the test database")?;
    let _ = admin.close().await;
    let url = replace_database(&shared.base_url, &name)?;
    let external = std::env::var("DATABASE_URL").is_ok();
    Ok(TestDatabase {
        url,
        name,
        admin_url: external.then(|| shared.base_url.clone()),
    })
}

/// The same URL with another database name (keeping user, host, port and query).
fn replace_database(url: &str, database: &str) -> Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .context("DATABASE_URL has no scheme")?;
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    Ok(format!("{scheme}://{authority}/{database}{query}"))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.take() else {
            return;
        };
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee; a thread with its own runtime is the
        // simplest way to run the async statement here.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut c = PgConnection::connect(&admin_url).await?;
                c.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn database_names_are_replaced_and_queries_kept() {
        assert_eq!(
            replace_database("postgres://u:p@h:5/db?sslmode=disable", "t1").unwrap(),
            "postgres://u:p@h:5/t1?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://h:5", "t1").unwrap(),
            "postgres://h:5/t1"
        );
    }
}
