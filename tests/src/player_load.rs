//! Players redeeming fresh and replayed action tokens through the edge, concurrently, for the
//! fault, failover and soak tests: every token minted, every send and every answer goes into an
//! exactly-once [`Ledger`], so whatever happens to the servers meanwhile can be checked after.

use crate::client::Guest;
use crate::exactly_once::Ledger;
use crate::stack::{ACTION_SECRET, EDGE_SECRET};
use crate::tokens::{mint_action, now};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the load behaves.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent senders.
    pub workers: usize,
    /// Share of requests that resend a token already sent (0.0–1.0).
    pub replay_share: f64,
    /// A sender's pause after each answer: `None` sends as fast as answers come, a pause
    /// makes a steady load (about `workers / pause` requests per second).
    pub pause: Option<Duration>,
}

/// What the load saw, once stopped.
#[derive(Debug)]
pub struct LoadReport {
    pub ledger: Ledger,
    pub requests: usize,
    pub replays: usize,
    /// Requests the client gave up on after 30 s: a server left them hanging.
    pub timed_out: usize,
    /// Answers by status (0: no answer at all).
    pub statuses: BTreeMap<u16, usize>,
    /// When each `503` or unanswered request ended.
    pub unavailable_at: Vec<Instant>,
    /// How long each answered request took, in the order they ended.
    pub latencies: Vec<Duration>,
}

impl LoadReport {
    /// Checks the ledger against the database at `database_url` for the load's `players`:
    /// every acknowledged update applied once, nothing twice, and at least `min_acknowledged`
    /// acknowledged (a load that got nothing through proves nothing).
    pub async fn assert_exactly_once(
        &self,
        database_url: &str,
        players: &[Guest],
        min_acknowledged: usize,
    ) {
        let db = sqlx::PgPool::connect(database_url)
            .await
            .expect("the database answers");
        let ids: Vec<String> = players.iter().map(|p| p.id.clone()).collect();
        let v = self
            .ledger
            .verify(&db, &ids)
            .await
            .expect("the ledger can be checked");
        assert!(v.ok, "exactly once: {v}");
        assert!(
            self.ledger.acknowledged() >= min_acknowledged,
            "too little load got through: {} acknowledged",
            self.ledger.acknowledged()
        );
    }

    /// The `q` quantile (0.0–1.0) of the answered requests' latencies.
    pub fn latency_quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(i).copied().unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct Shared {
    ledger: Mutex<Ledger>,
    /// (player index, jti, token) of every token sent so far, for replays.
    sent: Mutex<Vec<(usize, String, String)>>,
    statuses: Mutex<BTreeMap<u16, usize>>,
    unavailable_at: Mutex<Vec<Instant>>,
    latencies: Mutex<Vec<Duration>>,
    requests: AtomicUsize,
    replays: AtomicUsize,
    timed_out: AtomicUsize,
    stop: AtomicBool,
}

/// The running load; [`stop`](Self::stop) ends it and hands over what it saw.
#[derive(Debug)]
pub struct PlayerLoad {
    shared: Arc<Shared>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// Where the load's updates go.
#[derive(Debug, Clone)]
enum Target {
    /// `POST {edge}/api/scores`, as players send them.
    Edge(String),
    /// `POST {base}/internal/scores`, signed as the edge forwards them.
    Aggregator(String),
}

impl Target {
    fn request(
        &self,
        http: &reqwest::Client,
        session: &str,
        token: &str,
        w: usize,
        n: usize,
    ) -> reqwest::RequestBuilder {
        match self {
            Self::Edge(url) => http
                .post(url)
                // A fresh address per request: the per-IP binding is not under test.
                .header(
                    "cf-connecting-ip",
                    format!("10.{}.{}.{}", w % 256, n / 256 % 256, n % 256),
                )
                .bearer_auth(session)
                .json(&json!({ "action_token": token })),
            Self::Aggregator(base) => {
                crate::client::internal_score(http, base, EDGE_SECRET, session, token)
            }
        }
    }
}

impl PlayerLoad {
    /// Starts `options.workers` senders posting to `{edge}/api/scores` for `players`, tokens
    /// for 1–9 points each, signed with the test action secret.
    pub fn start(edge: &str, players: &[Guest], options: LoadOptions) -> Self {
        Self::start_on(Target::Edge(format!("{edge}/api/scores")), players, options)
    }

    /// The same load straight to an aggregator's `/internal/scores`, for tests of the
    /// aggregator's own faults that need no edge.
    pub fn start_at_aggregator(base: &str, players: &[Guest], options: LoadOptions) -> Self {
        Self::start_on(Target::Aggregator(base.to_owned()), players, options)
    }

    fn start_on(target: Target, players: &[Guest], options: LoadOptions) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client");
        let shared = Arc::new(Shared::default());
        let players = Arc::new(players.to_vec());
        let workers = (0..options.workers)
            .map(|w| {
                let (shared, players, http, target, options) = (
                    shared.clone(),
                    players.clone(),
                    http.clone(),
                    target.clone(),
                    options.clone(),
                );
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !shared.stop.load(Ordering::Relaxed) {
                        n += 1;
                        let (p, jti, token) = shared.next_token(w, n, &players, &options);
                        let sent = Instant::now();
                        let r = target
                            .request(&http, &players[p].token, &token, w, n)
                            .send()
                            .await;
                        let status = match r {
                            Ok(r) => r.status().as_u16(),
                            Err(e) => {
                                if e.is_timeout() {
                                    shared.timed_out.fetch_add(1, Ordering::Relaxed);
                                }
                                0
                            }
                        };
                        if status != 0 {
                            shared.latencies.lock().unwrap().push(sent.elapsed());
                        }
                        shared.requests.fetch_add(1, Ordering::Relaxed);
                        shared.ledger.lock().unwrap().answered(&jti, status);
                        *shared.statuses.lock().unwrap().entry(status).or_default() += 1;
                        if status == 503 || status == 0 {
                            shared.unavailable_at.lock().unwrap().push(Instant::now());
                            // Back off a little, as a client told Retry-After would.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        if let Some(pause) = options.pause {
                            tokio::time::sleep(pause).await;
                        }
                    }
                })
            })
            .collect();
        Self { shared, workers }
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Answers by status so far.
    pub fn statuses(&self) -> BTreeMap<u16, usize> {
        self.shared.statuses.lock().unwrap().clone()
    }

    /// Stops the senders (each finishes its request in flight) and reports.
    pub async fn stop(self) -> LoadReport {
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.expect("a load worker panicked");
        }
        let shared = &self.shared;
        LoadReport {
            ledger: std::mem::take(&mut *shared.ledger.lock().unwrap()),
            requests: shared.requests.load(Ordering::Relaxed),
            replays: shared.replays.load(Ordering::Relaxed),
            timed_out: shared.timed_out.load(Ordering::Relaxed),
            statuses: shared.statuses.lock().unwrap().clone(),
            unavailable_at: std::mem::take(&mut *shared.unavailable_at.lock().unwrap()),
            latencies: std::mem::take(&mut *shared.latencies.lock().unwrap()),
        }
    }
}

impl Shared {
    /// A token sent before (a replay), or a new one for the next player in turn.
    fn next_token(
        &self,
        w: usize,
        n: usize,
        players: &[Guest],
        options: &LoadOptions,
    ) -> (usize, String, String) {
        if rand::random::<f64>() < options.replay_share {
            let sent = self.sent.lock().unwrap();
            if !sent.is_empty() {
                self.replays.fetch_add(1, Ordering::Relaxed);
                return sent[rand::random::<usize>() % sent.len()].clone();
            }
        }
        let p = (w * 7 + n) % players.len();
        let minted = mint_action(
            ACTION_SECRET,
            "load",
            &players[p].id,
            1 + (n as i64 % 9),
            0,
            3_600,
            now(),
        );
        self.ledger.lock().unwrap().minted(&minted.claims.jti);
        let entry = (p, minted.claims.jti, minted.token);
        self.sent.lock().unwrap().push(entry.clone());
        entry
    }
}
