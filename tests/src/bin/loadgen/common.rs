//! What the scenarios share: sign-in, minting, signed requests, latency statistics, reports.

use crate::StackArgs;
use anyhow::Context;
use scoreboard_protocol::action::MintedAction;
use scoreboard_tests::client::{edge_signed_post, forwarded_score};
use scoreboard_tests::tokens::{mint_action, now};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// One client for the whole run: connections are pooled and reused.
pub(crate) fn http(max_idle: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(max_idle)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

#[derive(Clone, Debug)]
pub(crate) struct Player {
    pub(crate) id: String,
    pub(crate) session: String,
}

/// Signs `n` guests in at the aggregator, edge-signed (as the edge forwards them), a few at a
/// time. Names carry a run id so runs never collide.
pub(crate) async fn sign_in(
    stack: &StackArgs,
    http: &reqwest::Client,
    run: &str,
    n: usize,
) -> anyhow::Result<Vec<Player>> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    stream::iter(0..n)
        .map(|i| async move {
            let body = json!({"name": format!("load {run} {i}")}).to_string();
            let r = signed_post(http, stack, "/api/auth/guest", body)
                .send()
                .await
                .context("signing a guest in")?;
            let status = r.status();
            let v: Value = r.json().await.unwrap_or_default();
            anyhow::ensure!(status == 201, "guest sign-in answered {status}: {v}");
            Ok(Player {
                id: v["player_id"].as_str().unwrap_or_default().to_owned(),
                session: v["token"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .buffered(16)
        .try_collect()
        .await
}

/// Mints with the stack's action secret.
pub(crate) struct Minter(String);

impl Minter {
    pub(crate) fn new(stack: &StackArgs) -> Self {
        Self(stack.action_secret.clone())
    }

    /// A token for `points`, redeemable at once, valid for ten minutes.
    pub(crate) fn mint(&self, player: &str, points: i64) -> anyhow::Result<MintedAction> {
        scoreboard_protocol::PlayerId::parse(player)?;
        Ok(mint_action(&self.0, "load", player, points, 0, 600, now()))
    }

    /// Like [`Self::mint`], naming `boards` in the token (`brd`).
    pub(crate) fn mint_on(
        &self,
        player: &str,
        points: i64,
        boards: &[String],
    ) -> anyhow::Result<MintedAction> {
        use scoreboard_protocol::action::{ActionTokens, MintRequest};
        use scoreboard_protocol::{ActionName, BoardId, PlayerId};
        let boards: Vec<BoardId> = boards
            .iter()
            .map(|b| BoardId::parse(b.clone()))
            .collect::<Result<_, _>>()?;
        let keys =
            ActionTokens::from_secret(scoreboard_protocol::jwt::HmacSecret::new(self.0.as_bytes()));
        let request = MintRequest {
            player: &PlayerId::parse(player)?,
            action: &ActionName::parse("load")?,
            points,
            min_seconds: 0,
            ttl_secs: 600,
            boards: Some(&boards),
        };
        Ok(keys.mint(&request, &rand::random::<[u8; 16]>(), now())?)
    }
}

/// A load board's order and operator, from how its id ends (`-best`: a best time, ascending;
/// `-latest`: a rating, descending; anything else: points that add up).
pub(crate) fn kind_of(id: &str) -> (&'static str, &'static str) {
    if id.ends_with("-best") {
        ("asc", "best")
    } else if id.ends_with("-latest") {
        ("desc", "latest")
    } else {
        ("desc", "sum")
    }
}

/// Creates the boards `ids` of the kinds their ids name (an idempotent
/// `PUT /admin/boards/{id}`), with `reset` when given; needs `ADMIN_API_KEY`. `global` always
/// exists and is left alone.
pub(crate) async fn ensure_boards(
    stack: &StackArgs,
    http: &reqwest::Client,
    ids: &[String],
    reset: Option<&str>,
) -> anyhow::Result<()> {
    let ids: Vec<&String> = ids.iter().filter(|b| *b != "global").collect();
    if ids.is_empty() {
        return Ok(());
    }
    let key = stack
        .admin_key
        .as_deref()
        .context("boards other than global need ADMIN_API_KEY to create them")?;
    for id in ids {
        let (order, operator) = kind_of(id);
        let mut body = json!({"title": format!("Load {id}"), "order": order, "operator": operator});
        if let Some(reset) = reset {
            body["reset"] = json!(reset);
        }
        let r = http
            .put(format!("{}/admin/boards/{id}", stack.aggregator))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .context("creating a board")?;
        anyhow::ensure!(
            r.status().is_success(),
            "PUT /admin/boards/{id} answered {}",
            r.status()
        );
    }
    Ok(())
}

/// The edge's `POST /internal/scores`, signed.
pub(crate) fn internal_score(
    http: &reqwest::Client,
    stack: &StackArgs,
    session: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    forwarded_to(
        http,
        stack,
        scoreboard_protocol::http::INTERNAL_SCORES_PATH,
        session,
        token,
    )
}

/// The edge's forward of `token` to `path` (the score route, or its check), signed.
pub(crate) fn forwarded_to(
    http: &reqwest::Client,
    stack: &StackArgs,
    path: &str,
    session: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    signed_post(http, stack, path, forwarded_score(token, "loadgen")).bearer_auth(session)
}

/// `player` redeems a fresh token for `points` at the aggregator, as the edge forwards it; the
/// answer must be a 200 (`step` names what the redemption was for, in the error).
pub(crate) async fn redeem(
    http: &reqwest::Client,
    stack: &StackArgs,
    minter: &Minter,
    player: &Player,
    points: i64,
    step: &str,
) -> anyhow::Result<reqwest::Response> {
    let token = minter.mint(&player.id, points)?;
    let r = internal_score(http, stack, &player.session, &token.token)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "{step} answered {}", r.status());
    Ok(r)
}

/// A JSON `POST` to the aggregator with the edge signature, as the edge sends it.
fn signed_post(
    http: &reqwest::Client,
    stack: &StackArgs,
    path: &str,
    body: String,
) -> reqwest::RequestBuilder {
    edge_signed_post(
        http,
        &stack.aggregator,
        &stack.edge_secret,
        path,
        body,
        "application/json",
    )
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Default, Serialize, Clone)]
pub(crate) struct Latency {
    pub(crate) count: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

impl Latency {
    pub(crate) fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i].as_secs_f64() * 1000.0
        };
        Self {
            count: samples.len(),
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// Counts of answers by status and error code, e.g. `200`, `409 ACTION_TOKEN_REPLAYED`,
/// `0 connection` (no answer).
pub(crate) type Outcomes = BTreeMap<String, usize>;

pub(crate) fn outcome_key(status: u16, body: &Value) -> String {
    outcome_of(status, body["error"]["code"].as_str())
}

/// [`outcome_key`] from an answer's status and error code.
pub(crate) fn outcome_of(status: u16, code: Option<&str>) -> String {
    match code {
        Some(code) => format!("{status} {code}"),
        None if status == 0 => "0 no answer".into(),
        None => status.to_string(),
    }
}

/// Writes the report as JSON when `--json` was given.
pub(crate) fn write_json<T: Serialize>(stack: &StackArgs, report: &T) -> anyhow::Result<()> {
    if let Some(path) = &stack.json {
        let text = serde_json::to_string_pretty(report)? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Resident memory of the processes together, in KiB, from `/proc`; `None` when there are none
/// or one of them is gone (as [`cpu_seconds`]).
pub(crate) fn rss_kib_total(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| rss_kib(*p)).sum()
}

/// Resident memory of a process, in KiB, from `/proc`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user and system, every thread) the processes have used so far, in seconds, from
/// `/proc/<pid>/stat`; `None` when one of them is gone. Linux counts it in ticks of 1/100 s.
pub(crate) fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    let ticks = pids.iter().map(|pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The name, in parentheses, may hold spaces: fields are counted after it.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut fields = rest.split_whitespace().skip(11);
        let user: u64 = fields.next()?.parse().ok()?;
        let system: u64 = fields.next()?.parse().ok()?;
        Some(user + system)
    });
    ticks.sum::<Option<u64>>().map(|t| t as f64 / 100.0)
}
