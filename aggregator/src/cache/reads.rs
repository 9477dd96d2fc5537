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

/// One read of a page's candidates: how many entries rank before the cursor's rank key, the
/// candidates from that key on, and the board's newest version, in one `MULTI` so the three
/// agree.
type Candidates = (i64, Vec<(String, f64)>, Option<i64>);

impl Cache {
    /// A page of a board's period, or `None` when Redis is unavailable. A first page
    /// (`cursor` `None`) starts as of the board's newest version in Redis. Plain commands in a
    /// transaction, not a script: a page is mostly a range read, which Redis does natively
    /// several times faster than a Lua loop over it.
    pub(crate) async fn page(
        &self,
        board: &str,
        period: &str,
        order: Order,
        cursor: Option<Cursor>,
        limit: i64,
    ) -> Option<Page> {
        let start = cursor.unwrap_or(Cursor::start(-1));
        let [z, _, names, _, version] = self.board_keys(board, period);
        let mut as_of = start.as_of;
        let mut picked: Vec<(String, i64, i64, u64)> = Vec::new();
        // Each read is whole (one transaction): when skipped entries leave the page short, the
        // next read is a larger one from the cursor again, never a continuation, which could
        // meet an entry twice if the set shifted in between.
        let mut count = limit + SLACK;
        loop {
            let (before, rows, newest) =
                self.candidates(&z, &version, start.rank_key, count).await?;
            if as_of < 0 {
                as_of = newest.unwrap_or(0);
            }
            let read = rows.len() as i64;
            picked.clear();
            for (i, (member, key)) in rows.into_iter().enumerate() {
                let (key, v) = (key as i64, member_version(&member));
                let after = key > start.rank_key || (key == start.rank_key && v > start.version);
                if after && v <= as_of && (picked.len() as i64) < limit {
                    let rank = (before + i as i64 + 1) as u64;
                    let player = member_player(&member).unwrap_or_default().to_owned();
                    picked.push((player, key, v, rank));
                }
            }
            if picked.len() as i64 >= limit || read < count {
                break;
            }
            count *= 2;
        }
        let names = self.names(&names, &picked).await?;
        let next = (picked.len() as i64 == limit).then(|| {
            let last = picked.last().expect("a full page has a last row");
            Cursor {
                rank_key: last.1,
                version: last.2,
                as_of,
            }
        });
        let entries = picked
            .into_iter()
            .zip(names)
            .map(|((player_id, key, _, rank), name)| Entry {
                rank,
                player_id,
                name: name.unwrap_or_default(),
                score: order.value(key),
            })
            .collect();
        Some(Page { entries, next })
    }

    async fn candidates(
        &self,
        z: &str,
        version: &str,
        from_key: i64,
        count: i64,
    ) -> Option<Candidates> {
        self.call("reading a page", |mut c| async move {
            redis::pipe()
                .atomic()
                .zcount(z, "-inf", format!("({from_key}"))
                .cmd("ZRANGE")
                .arg(z)
                .arg(from_key)
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(count)
                .arg("WITHSCORES")
                .get(version)
                .query_async(&mut c)
                .await
        })
        .await
    }

    async fn names(
        &self,
        key: &str,
        picked: &[(String, i64, i64, u64)],
    ) -> Option<Vec<Option<String>>> {
        if picked.is_empty() {
            return Some(Vec::new());
        }
        let ids: Vec<&str> = picked.iter().map(|p| p.0.as_str()).collect();
        self.call("reading names", |mut c| async move {
            redis::cmd("HMGET")
                .arg(key)
                .arg(&ids)
                .query_async(&mut c)
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
