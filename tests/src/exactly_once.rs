//! The exactly-once check shared by the load generator and the fault tests: a ledger of every
//! token sent and every answer, compared with `score_events` and `scores` in PostgreSQL.
//!
//! Per token, over all its sends (an original and its replays may race either way):
//! - answered 200 once → exactly one event; answered 200 twice → a double application;
//! - answered only with definite refusals (4xx other than 409) → no event;
//! - answered 409 but never 200 → it must have been applied (409 says the token was used:
//!   when the aggregator dies between its commit and its answer, the edge's own retry of that
//!   very request learns from a 409 that it went through, and passes the 409 on);
//! - applied with no 200 and no 409 → only if some send went unanswered or got a 5xx (a `503`
//!   promises nothing was consumed by what the edge saw; a crash between commit and answer is
//!   the one case where the edge cannot know);
//! - no event twice, no event from a token the run did not mint, each total = its events.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// How the sends of one token were answered; a definite refusal (any other 4xx) needs no
/// count: it is what remains when none of these is set.
#[derive(Debug, Default, Clone)]
struct Answers {
    ok: usize,
    replayed: usize,
    unknown: usize,
}

/// What a run sent and what it was told.
#[derive(Debug, Default)]
pub struct Ledger {
    minted: HashSet<String>,
    answers: HashMap<String, Answers>,
}

/// The outcome of [`Ledger::verify`]; `ok` sums it up.
#[derive(Debug, Serialize, Clone)]
pub struct Verification {
    pub ok: bool,
    pub acknowledged_missing: usize,
    pub applied_twice: usize,
    pub applied_though_refused: usize,
    pub applied_without_answer: usize,
    pub foreign_events: usize,
    pub totals_mismatched: usize,
    pub events: usize,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token this run minted (an event from any other token is foreign).
    pub fn minted(&mut self, jti: &str) {
        self.minted.insert(jti.to_owned());
    }

    /// One send of the token `jti` was answered `status` (0: no answer at all).
    pub fn answered(&mut self, jti: &str, status: u16) {
        let a = self.answers.entry(jti.to_owned()).or_default();
        match status {
            200 => a.ok += 1,
            409 => a.replayed += 1,
            0 | 500..=599 => a.unknown += 1,
            _ => {}
        }
    }

    /// Tokens acknowledged with a 200.
    pub fn acknowledged(&self) -> usize {
        self.answers.values().filter(|a| a.ok > 0).count()
    }

    /// Compares the ledger with the database, for the run's `players` only.
    pub async fn verify(
        &self,
        db: &sqlx::PgPool,
        players: &[String],
    ) -> sqlx::Result<Verification> {
        let events: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT board_id, player_id, coalesce(jti, ''), pts FROM score_events WHERE player_id = ANY($1)",
        )
        .bind(players)
        .fetch_all(db)
        .await?;
        // Totals add up on `sum` boards, over every period of a board that resets; other
        // operators keep a value, checked elsewhere.
        let totals: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT e.board_id, e.player_id, sum(e.value)::bigint FROM entries e JOIN boards b ON b.id = e.board_id
             WHERE b.operator = 'sum' AND e.player_id = ANY($1) GROUP BY 1, 2",
        )
        .bind(players)
        .fetch_all(db)
        .await?;
        // A token on several boards is one event per board: applied twice means twice on one.
        let mut per_board: HashMap<(&str, &str), usize> = HashMap::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut expected: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for (board, player, jti, pts) in &events {
            *per_board.entry((jti.as_str(), board.as_str())).or_default() += 1;
            *seen.entry(jti.as_str()).or_default() += 1;
            *expected
                .entry((board.as_str(), player.as_str()))
                .or_default() += pts;
        }
        let applied_twice = per_board
            .iter()
            .filter(|(k, &n)| !k.0.is_empty() && n > 1)
            .count()
            + self.answers.values().filter(|a| a.ok > 1).count();
        let (mut acknowledged_missing, mut applied_though_refused, mut applied_without_answer) =
            (0, 0, 0);
        for (jti, a) in &self.answers {
            let applied = seen.contains_key(jti.as_str());
            if a.ok > 0 && !applied {
                acknowledged_missing += 1;
            }
            if a.ok == 0 && applied && a.replayed == 0 {
                // Applied, yet no send was told 200 or 409: fine only if one went unanswered.
                if a.unknown > 0 {
                    applied_without_answer += 1;
                } else {
                    applied_though_refused += 1;
                }
            }
            if a.ok == 0 && a.replayed > 0 && a.unknown == 0 && !applied {
                // Called a replay although it was never applied.
                applied_though_refused += 1;
            }
        }
        let foreign_events = seen.keys().filter(|j| !self.minted.contains(**j)).count();
        let totals_mismatched = totals
            .iter()
            .filter(|(b, p, value)| {
                expected
                    .get(&(b.as_str(), p.as_str()))
                    .copied()
                    .unwrap_or(0)
                    != *value
            })
            .count();
        Ok(Verification {
            ok: applied_twice == 0
                && acknowledged_missing == 0
                && applied_though_refused == 0
                && totals_mismatched == 0
                && foreign_events == 0,
            acknowledged_missing,
            applied_twice,
            applied_though_refused,
            applied_without_answer,
            foreign_events,
            totals_mismatched,
            events: events.len(),
        })
    }
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} events; acknowledged but missing {}, applied twice {}, applied though refused {}, applied without an answer {}, foreign {}, totals mismatched {})",
            if self.ok { "yes" } else { "NO" },
            self.events,
            self.acknowledged_missing,
            self.applied_twice,
            self.applied_though_refused,
            self.applied_without_answer,
            self.foreign_events,
            self.totals_mismatched
        )
    }
}
