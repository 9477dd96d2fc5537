//! Snapshots between aggregator instances: each instance publishes the snapshots its commits
//! produce on one Redis channel and offers every snapshot it hears to its own board, so
//! clients of every instance see every change. [`announce`] is the one way a new snapshot is
//! made public, with or without Redis.

use super::{Cache, CALL_TIMEOUT};
use crate::board::Board;
use futures_util::StreamExt;
use scoreboard_protocol::snapshot::Snapshot;
use std::sync::Arc;
use std::time::Duration;

/// How long a lost subscription waits before subscribing again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// How a snapshot replaces the board's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Only when newer: a commit's snapshot (sources may deliver out of order).
    IfNewer,
    /// Whatever its version: after an admin change that moved players without a score event.
    Always,
}

/// Publishes `snapshot` on this instance's board and to every other instance.
pub(crate) async fn announce(
    cache: Option<&Cache>,
    board: &Board,
    snapshot: Snapshot,
    how: Replace,
) {
    metrics::gauge!("leaderboard_version").set(snapshot.version as f64);
    if let Some(cache) = cache {
        if let Ok(json) = serde_json::to_string(&snapshot) {
            cache.publish(&json).await;
        }
    }
    match how {
        Replace::IfNewer => {
            board.offer(snapshot);
        }
        Replace::Always => board.force(snapshot),
    }
}

impl Cache {
    fn channel(&self) -> String {
        self.key("snapshots")
    }

    async fn publish(&self, json: &str) {
        let channel = self.channel();
        let _: Option<i64> = self
            .call("publishing a snapshot", |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(json)
                    .query_async(&mut c)
                    .await
            })
            .await;
    }

    /// Offers every snapshot heard on the channel to `board` until the subscription breaks
    /// (returns) or `shutdown` turns true (returns true).
    async fn relay(
        &self,
        board: &Board,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        let connected =
            tokio::time::timeout(CALL_TIMEOUT * 2, self.client.get_async_pubsub()).await;
        let Ok(Ok(mut ps)) = connected else {
            return false;
        };
        if ps.subscribe(self.channel()).await.is_err() {
            return false;
        }
        let mut messages = ps.on_message();
        loop {
            tokio::select! {
                m = messages.next() => {
                    let Some(msg) = m else { return false };
                    let payload: String = msg.get_payload().unwrap_or_default();
                    if let Ok(s) = serde_json::from_str::<Snapshot>(&payload) {
                        board.offer(s);
                    }
                }
                _ = shutdown.wait_for(|s| *s) => return true,
            }
        }
    }
}

/// Relays other instances' snapshots to this instance's board; subscribes again when Redis
/// goes away.
pub(crate) fn spawn_subscriber(
    cache: Arc<Cache>,
    board: Board,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if cache.relay(&board, &mut shutdown).await {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    })
}
