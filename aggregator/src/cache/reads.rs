//! Pages and around-me reads from Redis, answering exactly what `board::pages` answers from
//! PostgreSQL: the same order, the same ranks, the same [`Cursor`] rule (entries reached after
//! the version paging began at are skipped, so a page never repeats a player).

use super::Cache;
use crate::board::kind::Order;
use crate::board::pages::{Cursor, Entry, Page};

/// Up to `limit` entries after the cursor (rank key ARGV[1], version ARGV[2]) reached no later
/// than ARGV[3] (negative: the board's newest version now). Returns `{as_of, {{player, name,
/// rank key, version, rank}, ...}}`. KEYS: the board's five. Members lead with 19 digits of
/// version and a colon, so the player starts at byte 21.
pub(super) const PAGE: &str = r#"
local key, ver, as_of, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if as_of < 0 then as_of = tonumber(redis.call('GET', KEYS[5]) or '0') end
local pos = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1])
local out = {}
while #out < limit do
  local chunk = redis.call('ZRANGE', KEYS[1], pos, pos + 127, 'WITHSCORES')
  if #chunk == 0 then break end
  for i = 1, #chunk, 2 do
    local m, s = chunk[i], tonumber(chunk[i+1])
    local v = tonumber(string.sub(m, 1, 19))
    if (s > key or (s == key and v > ver)) and v <= as_of then
      local p = string.sub(m, 21)
      table.insert(out, {p, redis.call('HGET', KEYS[3], p) or '', chunk[i+1], v, pos + (i + 1) / 2})
      if #out >= limit then break end
    end
  end
  pos = pos + 128
end
return {as_of, out}
"#;

/// A player's place and the ARGV[2] entries either side. Returns `{rank of the first row,
/// {{player, name, rank key}, ...}}` (0-based rank), or nil when the player has no entry.
pub(super) const AROUND: &str = r#"
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then return nil end
local r = redis.call('ZRANK', KEYS[1], m)
local n = tonumber(ARGV[2])
local lo = math.max(0, r - n)
local items = redis.call('ZRANGE', KEYS[1], lo, r + n, 'WITHSCORES')
local out = {}
for i = 1, #items, 2 do
  local p = string.sub(items[i], 21)
  table.insert(out, {p, redis.call('HGET', KEYS[3], p) or '', items[i+1]})
end
return {lo, out}
"#;

type PageReply = (i64, Vec<(String, String, f64, i64, i64)>);
type AroundReply = Option<(i64, Vec<(String, String, f64)>)>;

impl Cache {
    /// A page of a board's period, or `None` when Redis is unavailable. A first page
    /// (`cursor` `None`) starts as of the board's newest version in Redis.
    pub(crate) async fn page(
        &self,
        board: &str,
        period: &str,
        order: Order,
        cursor: Option<Cursor>,
        limit: i64,
    ) -> Option<Page> {
        let start = cursor.unwrap_or(Cursor::start(-1));
        let (as_of, rows): PageReply = self
            .call("reading a page", |mut c| async move {
                self.invocation(&self.scripts.page, board, period)
                    .arg(start.rank_key)
                    .arg(start.version)
                    .arg(start.as_of)
                    .arg(limit)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let next = (rows.len() as i64 == limit).then(|| {
            let last = rows.last().expect("a full page has a last row");
            Cursor {
                rank_key: last.2 as i64,
                version: last.3,
                as_of,
            }
        });
        let entries = rows
            .into_iter()
            .map(|(player_id, name, key, _, rank)| Entry {
                rank: rank as u64,
                player_id,
                name,
                score: order.value(key as i64),
            })
            .collect();
        Some(Page { entries, next })
    }

    /// The player's entry and the `n` either side: `Some(None)` when Redis does not know the
    /// player on that board, `None` when Redis is unavailable.
    pub(crate) async fn around(
        &self,
        board: &str,
        period: &str,
        order: Order,
        player: &str,
        n: i64,
    ) -> Option<Option<(Entry, Vec<Entry>)>> {
        let reply: AroundReply = self
            .call("reading around a player", |mut c| async move {
                self.invocation(&self.scripts.around, board, period)
                    .arg(player)
                    .arg(n)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let Some((first, rows)) = reply else {
            return Some(None);
        };
        let rows: Vec<Entry> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (player_id, name, key))| Entry {
                rank: first as u64 + i as u64 + 1,
                player_id,
                name,
                score: order.value(key as i64),
            })
            .collect();
        let me = rows.iter().find(|e| e.player_id == player)?.clone();
        Some(Some((me, rows)))
    }
}
