//! `scoreboard-aggregator`: `serve`, `migrate`, `mint-token`, `check-config`, `healthcheck`,
//! `admin`.

use clap::{Parser, Subcommand};
use scoreboard_aggregator::config::Config;
use scoreboard_aggregator::{migrate, telemetry, Application};
use scoreboard_protocol::action::{ActionTokens, MintRequest};
use scoreboard_protocol::{ActionName, BoardId, PlayerId};
use std::process::ExitCode;

// mimalloc: 11% fewer instructions per applied update than glibc's malloc. Its `no_thp`
// feature stops it asking for transparent huge pages on its arenas, which took an idle SSE
// client from 16 to 28 KiB (BENCHMARKS.md, "The allocator"). Where the host's THP setting is
// `always` rather than `madvise`, the kernel does so unasked: `MIMALLOC_ALLOW_THP=0` (set in
// the container image) turns THP off for the process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The regional aggregator of edge-scoreboard. Configuration comes from the environment
/// (see `.env.example`).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve the API and the metrics.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Print an action token, as a trusted game backend would mint one.
    MintToken {
        /// The player the token is for.
        #[arg(long)]
        player: String,
        /// The action name (`act`).
        #[arg(long)]
        action: String,
        /// Points (`pts`): non-zero, at most 1,000,000 in absolute value; with `--board`, any
        /// integer up to 2^53 - 1 in absolute value (each board's own limits apply when the
        /// token is redeemed).
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
        /// Seconds before the token may be redeemed (`nbf - iat`).
        #[arg(long, default_value_t = 0)]
        min_seconds: i64,
        /// A board the token counts on (`brd`); repeat for up to 8 distinct boards. Without
        /// it, the boards of the action's ACTION_CATALOG entry, else `global`.
        #[arg(long = "board", value_name = "ID")]
        boards: Vec<String>,
    },
    /// Check the configuration, print every problem, exit non-zero if there is one.
    CheckConfig,
    /// Exit 0 when the local instance answers `GET /health/live` (on `PORT`) with 200: the
    /// container's HEALTHCHECK, for images without curl. Needs no other configuration.
    Healthcheck,
    /// The admin API: boards, players, periods, rebuild (`ADMIN_API_KEY` from the
    /// environment; exit codes in `--help` of each command and in the README).
    Admin(scoreboard_aggregator::admin_cli::AdminArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Healthcheck => return healthcheck(),
        // A client of a running aggregator: it needs none of the server's configuration.
        Command::Admin(args) => return scoreboard_aggregator::admin_cli::run(args),
        _ => {}
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Healthcheck | Command::Admin(_) => {
            unreachable!("answered before the configuration is read")
        }
        Command::CheckConfig => {
            println!("configuration ok");
            Ok(())
        }
        Command::MintToken {
            player,
            action,
            points,
            min_seconds,
            boards,
        } => mint(&config, &player, &action, points, min_seconds, &boards),
        Command::Migrate => runtime().and_then(|rt| rt.block_on(migrate(config.migration_url()))),
        Command::Serve => runtime().and_then(|rt| {
            rt.block_on(async {
                telemetry::init(&config.log_level, config.log_format);
                let app = Application::build(config).await?;
                tracing::info!(
                    port = app.port(),
                    metrics_port = app.metrics_port(),
                    "listening"
                );
                app.run_until_stopped(scoreboard_aggregator::shutdown_signal())
                    .await
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn mint(
    config: &Config,
    player: &str,
    action: &str,
    points: i64,
    min_seconds: i64,
    boards: &[String],
) -> anyhow::Result<()> {
    use rand::RngCore;
    let player = PlayerId::parse(player).map_err(|e| anyhow::anyhow!("--player: {e}"))?;
    let action = ActionName::parse(action).map_err(|e| anyhow::anyhow!("--action: {e}"))?;
    let boards = boards
        .iter()
        .map(|b| BoardId::parse(b.as_str()).map_err(|e| anyhow::anyhow!("--board {b:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut jti = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut jti);
    let minted = ActionTokens::new(config.action_keys.clone()).mint(
        &MintRequest {
            player: &player,
            action: &action,
            points,
            min_seconds,
            ttl_secs: config.shared.action_token_ttl_secs,
            // No `--board`: no `brd`, the token of before (the catalog or `global` decide).
            boards: (!boards.is_empty()).then_some(boards.as_slice()),
        },
        &jti,
        chrono::Utc::now().timestamp(),
    )?;
    println!("{}", minted.token);
    Ok(())
}

/// One HTTP/1.0 request to `127.0.0.1:$PORT/health/live`, two seconds at most.
fn healthcheck() -> ExitCode {
    use std::io::{Read, Write};
    use std::time::Duration;
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let answer = (|| -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /health/live HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 32];
        let n = s.read(&mut head)?;
        Ok(String::from_utf8_lossy(&head[..n]).into_owned())
    })();
    match answer {
        Ok(line) if line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200") => {
            ExitCode::SUCCESS
        }
        Ok(line) => {
            eprintln!("unhealthy: {}", line.lines().next().unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}
