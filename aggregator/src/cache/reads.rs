//! Pages and around-me reads from Redis, answering exactly what `board::pages` answers from
//! PostgreSQL: the same order, the same ranks, the same [`Cursor`] rule (entries reached after
//! the version paging began at are skipped, so a page never repeats a player).
//!
//! A sorted-set member is `<version, 19 digits>:<player>`; equal rank keys order by it.

use super::scripts::{member_player, member_version};
use super::Cache;
use crate::board::kind::Order;
use crate::board::pages::{Cursor, Entry, Page};

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

type AroundReply = Option<(i64, Vec<(String, String, f64)>)>;

/// Entries of a page candidate read, beyond `limit`: entries reached after `as_of` are rare
/// and skipped, and reading a few more saves a second read when there are some.
const SLACK: i64 = 8;

/// One read of a page's candidates, in one round trip and so consistent: how many entries
/// rank before the rank key ARGV[1], the ARGV[2] candidates from that key on, their players'
/// names (in the candidates' order) and the board's newest version. The loop only cuts the
/// player ids out of the members for the one `HMGET` (in slices, under Lua's limit on
/// arguments); ranges and look-ups are Redis's own commands.
pub(super) const PAGE: &str = r#"
local before = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1])
local rows = redis.call('ZRANGE', KEYS[1], ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, ARGV[2], 'WITHSCORES')
local names = {}
for from = 1, #rows, 2000 do
  local ids = {}
  for i = from, math.min(from + 1999, #rows), 2 do ids[#ids + 1] = string.sub(rows[i], 21) end
  for _, name in ipairs(redis.call('HMGET', KEYS[3], unpack(ids))) do names[#names + 1] = name end
end
return {before, rows, names, redis.call('GET', KEYS[5])}
"#;

type Candidates = (i64, Vec<(String, f64)>, Vec<Option<String>>, Option<i64>);

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
        let mut as_of = start.as_of;
        let mut picked: Vec<Entry> = Vec::new();
        let mut last = (0, 0);
        // Each read is whole (one script): when skipped entries leave the page short, the
        // next read is a larger one from the cursor again, never a continuation, which could
        // meet an entry twice if the set shifted in between.
        let mut count = limit + SLACK;
        loop {
            let (before, rows, names, newest) = self
                .candidates(board, period, start.rank_key, count)
                .await?;
            if as_of < 0 {
                as_of = newest.unwrap_or(0);
            }
            let read = rows.len() as i64;
            picked.clear();
            for (i, ((member, key), name)) in rows.into_iter().zip(names).enumerate() {
                let (key, v) = (key as i64, member_version(&member));
                let after = key > start.rank_key || (key == start.rank_key && v > start.version);
                if after && v <= as_of && (picked.len() as i64) < limit {
                    picked.push(Entry {
                        rank: (before + i as i64 + 1) as u64,
                        player_id: member_player(&member).unwrap_or_default().to_owned(),
                        name: name.unwrap_or_default(),
                        score: order.value(key),
                    });
                    last = (key, v);
                }
            }
            if picked.len() as i64 >= limit || read < count {
                break;
            }
            count *= 2;
        }
        let next = (picked.len() as i64 == limit).then_some(Cursor {
            rank_key: last.0,
            version: last.1,
            as_of,
        });
        let entries = picked;
        Some(Page { entries, next })
    }

    async fn candidates(
        &self,
        board: &str,
        period: &str,
        from_key: i64,
        count: i64,
    ) -> Option<Candidates> {
        self.call("reading a page", |mut c| async move {
            self.invocation(&self.scripts.page, board, period)
                .arg(from_key)
                .arg(count)
                .invoke_async(&mut c)
                .await
        })
        .await
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
