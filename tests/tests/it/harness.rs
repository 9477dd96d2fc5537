//! The harness itself: real round trips to the throwaway servers, isolation between tests,
//! restarts, and cleanup after a test process that panics or aborts.

use scoreboard_tests::{fresh_database, fresh_redis, PgServer, RedisServer};
use sqlx::{postgres::PgPoolOptions, Row};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// A pool of at most `max` connections to `url`.
async fn pool(url: &str, max: u32) -> sqlx::PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .connect(url)
        .await
        .unwrap()
}

/// A fresh database answers queries, and two fresh databases do not see each other's tables.
#[tokio::test]
async fn fresh_databases_are_real_and_isolated() {
    let a = fresh_database().await.unwrap();
    let b = fresh_database().await.unwrap();
    assert_ne!(a.name, b.name);
    let pa = pool(&a.url, 2).await;
    let pb = pool(&b.url, 2).await;
    sqlx::query("CREATE TABLE t (id int primary key, v text)")
        .execute(&pa)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (1, 'one')")
        .execute(&pa)
        .await
        .unwrap();
    let v: String = sqlx::query("SELECT v FROM t WHERE id = 1")
        .fetch_one(&pa)
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "one");
    let in_b: Option<String> = sqlx::query_scalar("SELECT to_regclass('t')::text")
        .fetch_one(&pb)
        .await
        .unwrap();
    assert_eq!(in_b, None, "database b must not see database a's table");
}

/// Redis answers, and a test's server can be stopped and started again on the same port.
#[tokio::test]
async fn redis_round_trips_and_restarts_on_the_same_port() {
    let r = fresh_redis().await.unwrap();
    let client = redis::Client::open(r.url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}k", r.key_prefix);
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    let v: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(v, "v");

    let mut server = RedisServer::start().await.unwrap();
    let port = server.port();
    server.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped Redis still listens"
    );
    server.start_again().await.unwrap();
    assert_eq!(server.port(), port);
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");
}

/// A cluster of a test's own keeps its data across a stop and a `kill -9`.
#[tokio::test]
async fn a_dedicated_postgres_survives_restart_and_crash() {
    let mut pg = PgServer::start().await.unwrap();
    let url = pg.url("postgres");
    {
        let pool = pool(&url, 1).await;
        sqlx::query("CREATE TABLE kept (v int)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO kept VALUES (42)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    pg.stop();
    assert!(TcpStream::connect(("127.0.0.1", pg.port())).is_err());
    pg.start_again().await.unwrap();
    pg.kill();
    pg.start_again().await.unwrap();
    let pool = pool(&url, 1).await;
    let v: i32 = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(v, 42);
    let dir = pg.data_dir().to_owned();
    pool.close().await;
    drop(pg);
    assert!(!dir.exists(), "the cluster directory is removed on drop");
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_probe(abort: bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness-panic-probe"));
    if abort {
        cmd.arg("--abort");
    }
    // The probe must make its own servers, whatever this test process was given.
    cmd.env_remove("DATABASE_URL").env_remove("REDIS_URL");
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "the probe is meant to die");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> Vec<String> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("probe printed no {key}: {stdout}"))
            .split(' ')
            .map(str::to_owned)
            .collect()
    };
    let pid = field("PID")[0].clone();
    let shared_port: u16 = field("SHARED_PG_URL")[0]
        .rsplit(':')
        .next()
        .and_then(|s| s.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let redis = field("REDIS");
    let pg = field("PG");
    for (port, what) in [
        (shared_port, "shared PostgreSQL"),
        (redis[0].parse().unwrap(), "Redis"),
        (pg[0].parse().unwrap(), "dedicated PostgreSQL"),
    ] {
        wait_until(
            &format!("{what} still listens after the probe died"),
            || TcpStream::connect(("127.0.0.1", port)).is_err(),
        );
    }
    wait_until("a probe directory is left in the temp dir", || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .all(|e| {
                !e.file_name()
                    .to_string_lossy()
                    .contains(&format!("-{pid}-"))
            })
    });
}

/// A test process that panics leaves no server and no directory behind.
#[test]
fn a_panicking_test_process_leaves_nothing_behind() {
    run_probe(false);
}

/// Nor does one that dies without running any destructor.
#[test]
fn an_aborted_test_process_leaves_nothing_behind() {
    run_probe(true);
}
