//! `loadgen`: drives a running edge-scoreboard stack and reports what it measured, as a table
//! on stdout and as JSON (`--json`). It mints its own sessions (guests signed in through the
//! aggregator with the edge signature, so the per-IP limit of direct callers does not apply)
//! and action tokens with the stack's secrets, read from the environment like the services do.
//!
//! | scenario | what |
//! | --- | --- |
//! | `apply` | signed `POST /internal/scores` at the aggregator, closed or open loop, tokens on 1–8 boards (`--boards`); exactly-once check |
//! | `edge` | `POST /api/scores` through the edge with session and action token; optional replays |
//! | `fanout` | N SSE clients (aggregator or edge hub), on one board or spread over many (`--boards`), while a writer changes them |
//! | `read` | `GET /api/leaderboard` and `GET /api/players/{id}`, or a board's pages and around-me (`--board`) |
//!
//! Every scenario has `--quick`, a short run that the test command uses to assert correctness
//! (exactly once, every client saw the final version), never a time.

use clap::{Args, Parser, Subcommand};

mod apply;
mod common;
mod fanout;
mod read;

/// Load generator for edge-scoreboard.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Signed `POST /internal/scores` straight at the aggregator.
    Apply(apply::ApplyArgs),
    /// `POST /api/scores` through the edge worker.
    Edge(apply::ApplyArgs),
    /// SSE clients on the aggregator or through the edge while a writer changes the top 10.
    Fanout(fanout::FanoutArgs),
    /// `GET /api/leaderboard` and `GET /api/players/{id}`.
    Read(read::ReadArgs),
}

/// Where the stack is and what the run may use of it.
#[derive(Args, Clone, Debug)]
pub(crate) struct StackArgs {
    /// The aggregator's base URL (sign-in and signed requests go here).
    #[arg(
        long,
        env = "LOADGEN_AGGREGATOR",
        default_value = "http://127.0.0.1:3000"
    )]
    pub(crate) aggregator: String,
    /// The edge's base URL.
    #[arg(long, env = "LOADGEN_EDGE", default_value = "http://127.0.0.1:8787")]
    pub(crate) edge: String,
    /// PostgreSQL of the stack, for the exactly-once verification (skipped without it).
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// Session secret of the stack (HS256).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: String,
    /// Action-token secret of the stack.
    #[arg(long, env = "ACTION_TOKEN_SECRET", hide_env_values = true)]
    pub(crate) action_secret: String,
    /// Edge forwarding secret of the stack.
    #[arg(long, env = "EDGE_FORWARD_SECRET", hide_env_values = true)]
    pub(crate) edge_secret: String,
    /// The aggregator's admin key: scenarios on boards other than `global` create them.
    #[arg(long, env = "ADMIN_API_KEY", hide_env_values = true)]
    pub(crate) admin_key: Option<String>,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub(crate) json: Option<std::path::PathBuf>,
    /// A short run for the test command: correctness only.
    #[arg(long)]
    pub(crate) quick: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = rt.block_on(async {
        match cli.scenario {
            Scenario::Apply(a) => apply::run(a, apply::Path::Aggregator).await,
            Scenario::Edge(a) => apply::run(a, apply::Path::Edge).await,
            Scenario::Fanout(a) => fanout::run(a).await,
            Scenario::Read(a) => read::run(a).await,
        }
    });
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen: the correctness check failed (see above)");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
