//! The Lua scripts that keep the Redis boards, and the calls that run them. Entries are written
//! absolute (never incremented) and guarded by the version that set them, so every write is
//! idempotent and an older write arriving late changes nothing.
//!
//! A board's sorted set is ordered ascending by the rank key (`board::kind::Order`) and, among
//! equal keys, by member: the member leads with the zero-padded event id, so the earlier
//! achiever comes first. That is the rule of `board::sql`, "(rank key, event id) ascending".

use super::Cache;
use crate::board::kind::Order;
use crate::board::{BoardDef, BoardRow};
use std::time::Duration;

/// Sorted-set member for a row: `<version, 19 digits>:<player>`.
pub(super) fn member(player_id: &str, version: i64) -> String {
    format!("{version:019}:{player_id}")
}

/// The event id a [`member`] leads with (0 for anything else).
pub(super) fn member_version(member: &str) -> i64 {
    member
        .split_once(':')
        .and_then(|(v, _)| v.parse().ok())
        .unwrap_or(0)
}

/// The player a [`member`] belongs to.
pub(super) fn member_player(member: &str) -> Option<&str> {
    member.split_once(':').map(|(_, p)| p)
}

/// Writes rows (absolute rank keys), skipping any row older than what Redis has, raises the
/// board's newest version, and returns each row's 0-based rank. KEYS: the board's five (see
/// `Cache::board_keys`). ARGV: groups of (player, rank key, member, name, version).
const UPSERT: &str = r#"
local ranks = {}
local top = tonumber(redis.call('GET', KEYS[5]) or '0')
for i = 1, #ARGV, 5 do
  local p, key, m, name, v = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], tonumber(ARGV[i+4])
  -- The member leads with the version that wrote it: no separate read of the versions hash.
  local old = redis.call('HGET', KEYS[2], p)
  local cur = old and tonumber(string.sub(old, 1, 19)) or -1
  if v >= cur then
    -- ZADD even for the same member: it repairs a set that lost it, and costs what a check would.
    if old and old ~= m then redis.call('ZREM', KEYS[1], old) end
    redis.call('ZADD', KEYS[1], key, m)
    if old ~= m then
      redis.call('HSET', KEYS[2], p, m)
      redis.call('HSET', KEYS[4], p, v)
    end
    redis.call('HSET', KEYS[3], p, name)
    if v > top then top = v end
    old = m
  end
  table.insert(ranks, redis.call('ZRANK', KEYS[1], old))
end
redis.call('SET', KEYS[5], top)
return ranks
"#;

/// The [`UPSERT`] script's arguments for `rows`.
pub(super) fn upsert_args(inv: &mut redis::ScriptInvocation<'_>, order: Order, rows: &[BoardRow]) {
    for r in rows {
        inv.arg(&r.player_id)
            .arg(order.rank_key(r.value))
            .arg(member(&r.player_id, r.version))
            .arg(&r.name)
            .arg(r.version);
    }
}

/// Removes a player. KEYS: the board's five. ARGV: player.
const REMOVE: &str = r#"
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then redis.call('ZREM', KEYS[1], old) end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"#;

/// A player's name, rank key and 0-based rank, or nil. KEYS: the board's five. ARGV: player.
const PLAYER: &str = r#"
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then return nil end
return {redis.call('HGET', KEYS[3], ARGV[1]), redis.call('ZSCORE', KEYS[1], m), redis.call('ZRANK', KEYS[1], m)}
"#;

/// The scripts, loaded once per cache.
#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) upsert: redis::Script,
    pub(super) remove: redis::Script,
    player: redis::Script,
    pub(super) around: redis::Script,
    pub(super) repair: redis::Script,
    pub(super) swap: redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            upsert: redis::Script::new(UPSERT),
            remove: redis::Script::new(REMOVE),
            player: redis::Script::new(PLAYER),
            around: redis::Script::new(super::reads::AROUND),
            repair: redis::Script::new(super::drift::REPAIR),
            swap: redis::Script::new(super::rebuild::SWAP),
        }
    }
}

impl Cache {
    /// An invocation of `script` with the five keys of a board's period.
    pub(super) fn invocation<'a>(
        &self,
        script: &'a redis::Script,
        board: &str,
        period: &str,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in self.board_keys(board, period) {
            inv.key(k);
        }
        inv
    }

    /// Writes absolute entries of one board; returns 1-based ranks (in the rows' order) when
    /// Redis answered and is healthy (while a rebuild catches up, it writes and answers `None`).
    pub(crate) async fn upsert(
        &self,
        def: &BoardDef,
        period: &str,
        rows: &[BoardRow],
    ) -> Option<Vec<u64>> {
        if rows.is_empty() {
            return Some(Vec::new());
        }
        let ranks: Vec<Option<i64>> = self
            .call_write("writing scores", |mut c| async move {
                let mut inv = self.invocation(&self.scripts.upsert, def.id.as_str(), period);
                upsert_args(&mut inv, def.order, rows);
                inv.invoke_async(&mut c).await
            })
            .await?;
        // Written; its ranks count only once Redis holds everything (the end of a rebuild).
        if !self.is_healthy() {
            return None;
        }
        Some(
            ranks
                .into_iter()
                .map(|r| r.unwrap_or(0) as u64 + 1)
                .collect(),
        )
    }

    /// Lets a closed period's keys expire after `grace` (PostgreSQL keeps it for good); `false`
    /// when Redis is unavailable.
    pub(crate) async fn expire_period(&self, board: &str, period: &str, grace: Duration) -> bool {
        let keys = self.board_keys(board, period);
        self.call("expiring a closed period", |mut c| async move {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.expire(k, grace.as_secs() as i64).ignore();
            }
            pipe.query_async::<()>(&mut c).await
        })
        .await
        .is_some()
    }

    /// Takes a player off one board's period; `false` when Redis is unavailable.
    pub(crate) async fn remove(&self, board: &str, period: &str, player: &str) -> bool {
        self.call_write("removing a player", |mut c| async move {
            self.invocation(&self.scripts.remove, board, period)
                .arg(player)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .is_some()
    }

    /// `Some(Some((name, value, rank)))` from Redis, `Some(None)` when Redis does not know the
    /// player on that board, `None` when Redis is unavailable.
    pub(crate) async fn player(
        &self,
        board: &str,
        period: &str,
        order: Order,
        player: &str,
    ) -> Option<Option<(String, i64, u64)>> {
        let v: Option<(String, f64, i64)> = self
            .call("reading a player", |mut c| async move {
                self.invocation(&self.scripts.player, board, period)
                    .arg(player)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Some(v.map(|(name, key, rank)| (name, order.value(key as i64), rank as u64 + 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_version_sorts_first_among_equal_keys() {
        assert!(member("b", 5) < member("a", 6));
        assert!(member("z", 9) < member("a", 10));
        assert_eq!(member_player(&member("p:1", 7)), Some("p:1"));
        assert_eq!(member_version(&member("p:1", 7)), 7);
    }
}
