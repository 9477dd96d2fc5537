//! The Lua scripts that keep the Redis board, and the calls that run them. Scores are written
//! absolute (never incremented) and guarded by the version that set them, so every write is
//! idempotent and an older write arriving late changes nothing.

use super::Cache;
use crate::board::BoardRow;

/// Sorted-set member for a row. Redis orders equal scores by member, descending under
/// `ZREVRANGE`; leading with `i64::MAX - version`, zero-padded, makes the earlier achiever
/// come first: the tie rule of `board::sql`, "higher score, then the smaller event id".
pub(super) fn member(player_id: &str, version: i64) -> String {
    format!("{:019}:{player_id}", i64::MAX - version)
}

/// The player a [`member`] belongs to.
pub(super) fn member_player(member: &str) -> Option<&str> {
    member.split_once(':').map(|(_, p)| p)
}

/// Writes rows (absolute scores), skipping any row older than what Redis has, and returns
/// each row's 0-based rank. KEYS: board, members, names, versions. ARGV: groups of
/// (player, score, member, name, version).
const UPSERT: &str = r#"
local ranks = {}
for i = 1, #ARGV, 5 do
  local p, score, m, name, v = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], tonumber(ARGV[i+4])
  local cur = tonumber(redis.call('HGET', KEYS[4], p) or '-1')
  if v >= cur then
    local old = redis.call('HGET', KEYS[2], p)
    if old then redis.call('ZREM', KEYS[1], old) end
    redis.call('ZADD', KEYS[1], score, m)
    redis.call('HSET', KEYS[2], p, m)
    redis.call('HSET', KEYS[3], p, name)
    redis.call('HSET', KEYS[4], p, v)
  end
  local now = redis.call('HGET', KEYS[2], p)
  table.insert(ranks, redis.call('ZREVRANK', KEYS[1], now))
end
return ranks
"#;

/// Removes a player. KEYS: board, members, names, versions. ARGV: player.
const REMOVE: &str = r#"
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then redis.call('ZREM', KEYS[1], old) end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"#;

/// A player's name, score and 0-based rank, or nil. KEYS as above. ARGV: player.
const PLAYER: &str = r#"
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then return nil end
return {redis.call('HGET', KEYS[3], ARGV[1]), redis.call('ZSCORE', KEYS[1], m), redis.call('ZREVRANK', KEYS[1], m)}
"#;

/// The three scripts, loaded once per cache.
#[derive(Debug)]
pub(super) struct Scripts {
    upsert: redis::Script,
    remove: redis::Script,
    player: redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            upsert: redis::Script::new(UPSERT),
            remove: redis::Script::new(REMOVE),
            player: redis::Script::new(PLAYER),
        }
    }
}

impl Cache {
    /// An invocation of `script` with the board's four keys.
    fn invocation<'a>(&self, script: &'a redis::Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in self.board_keys() {
            inv.key(k);
        }
        inv
    }

    /// Writes absolute scores; returns 1-based ranks (in the rows' order) when Redis answered.
    pub(crate) async fn upsert(&self, rows: &[BoardRow]) -> Option<Vec<u64>> {
        if rows.is_empty() {
            return Some(Vec::new());
        }
        let ranks: Vec<Option<i64>> = self
            .call("writing scores", |mut c| async move {
                let mut inv = self.invocation(&self.scripts.upsert);
                for r in rows {
                    inv.arg(&r.player_id)
                        .arg(r.score)
                        .arg(member(&r.player_id, r.version))
                        .arg(&r.name)
                        .arg(r.version);
                }
                inv.invoke_async(&mut c).await
            })
            .await?;
        Some(
            ranks
                .into_iter()
                .map(|r| r.unwrap_or(0) as u64 + 1)
                .collect(),
        )
    }

    /// Takes a player off the Redis board; `false` when Redis is unavailable.
    pub(crate) async fn remove(&self, player: &str) -> bool {
        self.call("removing a player", |mut c| async move {
            self.invocation(&self.scripts.remove)
                .arg(player)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .is_some()
    }

    /// `Some(Some((name, score, rank)))` from Redis, `Some(None)` when Redis does not know the
    /// player, `None` when Redis is unavailable.
    pub(crate) async fn player(&self, player: &str) -> Option<Option<(String, i64, u64)>> {
        let v: Option<(String, f64, i64)> = self
            .call("reading a player", |mut c| async move {
                self.invocation(&self.scripts.player)
                    .arg(player)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Some(v.map(|(name, score, rank)| (name, score as i64, rank as u64 + 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_version_sorts_after_a_later_one_so_it_ranks_first_under_zrevrange() {
        assert!(member("a", 5) > member("b", 6));
        assert_eq!(member_player(&member("p:1", 7)), Some("p:1"));
    }
}
