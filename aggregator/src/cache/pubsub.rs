//! Snapshots between aggregator instances: each instance publishes the snapshots its commits
//! produce on one Redis channel and offers every snapshot it hears to its own board, so
//! clients of every instance see every change. [`announce`] is the one way a new snapshot is
//! made public, with or without Redis. On a Redis Cluster the channel is a sharded one
//! (`SPUBLISH`/`SSUBSCRIBE`): a message goes to the shard owning the channel's slot rather
//! than to every node, and the cluster client subscribes again wherever the slot moves.

use super::{cluster_client, Cache, Client, CALL_TIMEOUT};
use crate::board::Boards;
use futures_util::StreamExt;
use scoreboard_protocol::snapshot::{BoardSnapshot, PeriodRef, Snapshot};
use scoreboard_protocol::BoardId;
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
    boards: &Boards,
    snapshot: BoardSnapshot,
    how: Replace,
) {
    if snapshot.board.is_global() {
        metrics::gauge!("leaderboard_version").set(snapshot.snapshot.version as f64);
    }
    if let Some(cache) = cache {
        if let Ok(json) = serde_json::to_string(&snapshot) {
            cache.publish(&json).await;
        }
    }
    let Some(live) = boards.get(snapshot.board.as_str()) else {
        // A board created on another instance a moment ago: the poller will load it.
        return;
    };
    match how {
        Replace::IfNewer => {
            live.board.offer(snapshot);
        }
        Replace::Always => live.board.force(snapshot),
    }
}

/// A snapshot heard on the channel. Instances from before many boards publish the plain
/// snapshot of the one board, `global`.
fn parse(payload: &str) -> Option<BoardSnapshot> {
    serde_json::from_str::<BoardSnapshot>(payload)
        .ok()
        .or_else(|| {
            let snapshot = serde_json::from_str::<Snapshot>(payload).ok()?;
            Some(BoardSnapshot::new(
                BoardId::global(),
                PeriodRef::all(),
                snapshot,
            ))
        })
}

impl Cache {
    fn channel(&self) -> String {
        self.key("snapshots")
    }

    async fn publish(&self, json: &str) {
        let channel = self.channel();
        let command = match self.client {
            Client::Server(_) => "PUBLISH",
            Client::Cluster(..) => "SPUBLISH",
        };
        let _: Option<i64> = self
            .call("publishing a snapshot", |mut c| async move {
                redis::cmd(command)
                    .arg(&channel)
                    .arg(json)
                    .query_async(&mut c)
                    .await
            })
            .await;
    }

    /// Offers every snapshot heard on the channel to its board until the subscription breaks
    /// (returns) or `shutdown` turns true (returns true).
    async fn relay(
        &self,
        boards: &Boards,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        let client = match &self.client {
            Client::Server(client) => client,
            Client::Cluster(_, nodes) => return self.relay_sharded(nodes, boards, shutdown).await,
        };
        let connected = tokio::time::timeout(CALL_TIMEOUT * 2, client.get_async_pubsub()).await;
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
                    if let Some(s) = parse(&payload) {
                        boards.offer(s);
                    }
                }
                _ = shutdown.wait_for(|s| *s) => return true,
            }
        }
    }

    /// [`Cache::relay`] on a cluster: a connection of its own on RESP3, whose pushes carry the
    /// messages; the client subscribes again by itself after a failover moves the slot.
    async fn relay_sharded(
        &self,
        nodes: &[secrecy::SecretString],
        boards: &Boards,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
        let Ok(client) = cluster_client(nodes, Some(tx)) else {
            return false;
        };
        let connected = tokio::time::timeout(CALL_TIMEOUT * 2, client.get_async_connection()).await;
        let Ok(Ok(mut conn)) = connected else {
            return false;
        };
        let subscribed =
            tokio::time::timeout(CALL_TIMEOUT * 2, conn.ssubscribe(self.channel())).await;
        if !matches!(subscribed, Ok(Ok(()))) {
            return false;
        }
        loop {
            tokio::select! {
                p = pushes.recv() => {
                    let Some(push) = p else { return false };
                    if push.kind != redis::PushKind::SMessage {
                        continue;
                    }
                    // [channel, payload]
                    let payload = push.data.get(1).and_then(|v| redis::from_redis_value::<String>(v).ok());
                    if let Some(s) = payload.as_deref().and_then(parse) {
                        boards.offer(s);
                    }
                }
                _ = shutdown.wait_for(|s| *s) => return true,
            }
        }
    }
}

/// Relays other instances' snapshots to this instance's boards; subscribes again when Redis
/// goes away.
pub(crate) fn spawn_subscriber(
    cache: Arc<Cache>,
    boards: Arc<Boards>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if cache.relay(&boards, &mut shutdown).await {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    })
}
