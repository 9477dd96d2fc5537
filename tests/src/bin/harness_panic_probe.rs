//! Starts the harness's servers, prints where they are, then panics: the harness test runs
//! it to prove that nothing is left behind by a test process that dies.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = scoreboard_tests::fresh_database().await?;
    let redis = scoreboard_tests::RedisServer::start().await?;
    let pg = scoreboard_tests::PgServer::start().await?;
    println!("PID {}", std::process::id());
    println!("SHARED_PG_URL {}", db.url);
    println!("REDIS {} {}", redis.port(), redis.data_dir().display());
    println!("PG {} {}", pg.port(), pg.data_dir().display());
    // An abort skips every destructor, like `kill -9` or `panic = "abort"` would: only the
    // supervisors are left to clean up.
    if std::env::args().any(|a| a == "--abort") {
        std::process::abort();
    }
    panic!("the probe panics on purpose");
}
