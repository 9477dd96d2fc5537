//! The drift check: finds the entries where Redis differs from PostgreSQL and repairs only
//! those. It walks each board in pages both ways (PostgreSQL's entries missing or older in
//! Redis; Redis's entries no longer on the board), so no call grows with the board. A
//! difference is only suspected at first: a batch commits in PostgreSQL before it is copied to
//! Redis, so under load some are writes in flight. Suspects are read again after a pause and
//! repaired only if they still differ, each by a script fenced by the version PostgreSQL was
//! read at: an entry Redis got from a later write is never overwritten.

use super::scripts::{member, member_player, member_version};
use super::Cache;
use crate::board::kind::Order;
use crate::board::sql::{self, BoardRow, Changed};
use crate::board::{BoardDef, Boards};
use crate::db::Db;
use anyhow::Context;
use foldhash::{HashMap, HashSet};
use std::time::Duration;

/// Entries per page of the walk.
const PAGE: i64 = 5_000;
/// How long a suspected difference is given to settle before it is read again.
const SETTLE: Duration = Duration::from_secs(2);

/// Repairs entries, each only if what Redis holds is not newer than the fence. KEYS: the
/// board's five. ARGV: the fence, then groups of (player, rank key, member, name, version);
/// an empty rank key removes the player (the member is then the one Redis was seen holding).
/// Returns how many entries it changed.
pub(super) const REPAIR: &str = r#"
local fence = tonumber(ARGV[1])
local top = tonumber(redis.call('GET', KEYS[5]) or '0')
local n = 0
for i = 2, #ARGV, 5 do
  local p, key, m, name, v = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], tonumber(ARGV[i+4])
  local old = redis.call('HGET', KEYS[2], p)
  local cur = old and tonumber(string.sub(old, 1, 19)) or -1
  if cur <= fence then
    if old then redis.call('ZREM', KEYS[1], old) end
    if key == '' then
      if m ~= '' then redis.call('ZREM', KEYS[1], m) end
      redis.call('HDEL', KEYS[2], p)
      redis.call('HDEL', KEYS[3], p)
      redis.call('HDEL', KEYS[4], p)
    else
      redis.call('ZADD', KEYS[1], key, m)
      redis.call('HSET', KEYS[2], p, m)
      redis.call('HSET', KEYS[3], p, name)
      redis.call('HSET', KEYS[4], p, v)
      if v > top then top = v end
    end
    n = n + 1
  end
end
redis.call('SET', KEYS[5], top)
return n
"#;

/// A board's (PostgreSQL version, Redis version, sorted-set size).
pub(super) type Fingerprint = (i64, i64, i64);

/// A player suspected of differing, with the member Redis was seen holding for them.
type Suspects = HashMap<String, Option<String>>;

impl Cache {
    /// Checks every board's current period and repairs what really differs; returns the
    /// number of entries repaired (`redis_leaderboard_sync_drift`).
    pub(crate) async fn repair_drift(&self, db: &Db, boards: &Boards) -> anyhow::Result<u64> {
        let mut repaired = 0;
        for live in boards.all() {
            let period = live.period().id;
            let key = (live.def.id.to_string(), period.clone());
            let seen = self.fingerprint(db, live.def.id.as_str(), &period).await?;
            if self.clean.lock().expect("not poisoned").get(&key) == Some(&seen) {
                continue;
            }
            let mut suspects = self.missing_or_older(db, &live.def, &period).await?;
            suspects.extend(self.no_longer_on_board(db, &live.def, &period).await?);
            let fixed = match suspects.is_empty() {
                true => 0,
                false => {
                    tokio::time::sleep(SETTLE).await;
                    self.repair(db, &live.def, &period, suspects).await?
                }
            };
            let mut clean = self.clean.lock().expect("not poisoned");
            match fixed {
                0 => clean.insert(key, seen),
                _ => clean.remove(&key),
            };
            repaired += fixed;
        }
        Ok(repaired)
    }

    /// What says a board's copy has not moved since it was last found equal: PostgreSQL's
    /// version, Redis's, and the size of Redis's sorted set. A board whose fingerprint is the
    /// one of its last clean check is not walked again (an idle board costs three reads).
    async fn fingerprint(&self, db: &Db, board: &str, period: &str) -> anyhow::Result<Fingerprint> {
        let pg = sql::current_version(db.pool(), board, period).await?;
        let [z, _, _, _, version] = self.board_keys(board, period);
        let (v, n): (Option<i64>, i64) = self
            .call("checking drift", |mut c| async move {
                redis::pipe()
                    .get(&version)
                    .zcard(&z)
                    .query_async(&mut c)
                    .await
            })
            .await
            .context("Redis is unavailable")?;
        Ok((pg, v.unwrap_or(0), n))
    }

    /// PostgreSQL's entries that Redis lacks or holds at another version not newer than the
    /// page's read.
    async fn missing_or_older(
        &self,
        db: &Db,
        def: &BoardDef,
        period: &str,
    ) -> anyhow::Result<Suspects> {
        let board = def.id.as_str();
        let [z, members, ..] = self.board_keys(board, period);
        let mut conn = db.conn().await?;
        let mut walk = sql::Walk::new(board, period, def.order, PAGE);
        let mut suspects = Suspects::default();
        while let Some((rows, version)) = walk.next(&mut conn).await? {
            let held = self.held(&z, &members, def.order, &rows).await?;
            for (r, (m, in_set)) in rows.iter().zip(held) {
                let v = m.as_deref().map(member_version);
                if !in_set && v.is_none_or(|v| v <= version) {
                    suspects.insert(r.player_id.clone(), m);
                }
            }
        }
        Ok(suspects)
    }

    /// Redis's entries whose player has no entry on the board in PostgreSQL (or is banned),
    /// found with `ZSCAN` (every member present throughout the scan is seen).
    async fn no_longer_on_board(
        &self,
        db: &Db,
        def: &BoardDef,
        period: &str,
    ) -> anyhow::Result<Suspects> {
        let board = def.id.as_str();
        let [z, ..] = self.board_keys(board, period);
        let (mut cursor, mut suspects) = (0u64, Suspects::default());
        loop {
            let key = z.clone();
            let (next, page): (u64, Vec<(String, f64)>) = self
                .call("checking drift", |mut c| async move {
                    redis::cmd("ZSCAN")
                        .arg(&key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(PAGE)
                        .query_async(&mut c)
                        .await
                })
                .await
                .context("Redis is unavailable")?;
            let seen: Vec<(&str, &str)> = page
                .iter()
                .filter_map(|(m, _)| Some((member_player(m)?, m.as_str())))
                .collect();
            let ids: Vec<&str> = seen.iter().map(|s| s.0).collect();
            let (rows, version) = sql::rows_of(db, board, period, &ids).await?;
            let on_board: HashSet<&str> = rows
                .iter()
                .filter(|(_, banned)| !banned)
                .map(|(r, _)| r.player_id.as_str())
                .collect();
            for (player, m) in seen {
                if !on_board.contains(player) && member_version(m) <= version {
                    suspects.insert(player.to_owned(), Some(m.to_owned()));
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(suspects)
    }

    /// Reads the suspects again on both sides and repairs those that still differ; returns
    /// how many the script changed.
    async fn repair(
        &self,
        db: &Db,
        def: &BoardDef,
        period: &str,
        suspects: Suspects,
    ) -> anyhow::Result<u64> {
        let board = def.id.as_str();
        let ids: Vec<&str> = suspects.keys().map(String::as_str).collect();
        let (rows, fence) = sql::rows_of(db, board, period, &ids).await?;
        let [_, members, ..] = self.board_keys(board, period);
        let held = self.members_of(&members, &ids).await?;
        let now: HashMap<&str, &Changed> =
            rows.iter().map(|c| (c.0.player_id.as_str(), c)).collect();
        let on_board: Vec<BoardRow> = rows.iter().filter(|c| !c.1).map(|c| c.0.clone()).collect();
        let [z, ..] = self.board_keys(board, period);
        let settled: HashSet<&str> = self
            .held(&z, &members, def.order, &on_board)
            .await?
            .iter()
            .zip(&on_board)
            .filter(|((_, in_set), _)| *in_set)
            .map(|(_, r)| r.player_id.as_str())
            .collect();
        let mut fixes: Vec<(String, String, String, String, i64)> = Vec::new();
        for (player, m) in ids.iter().zip(held) {
            match now.get(player) {
                _ if settled.contains(player) => {}
                Some((r, false)) => fixes.push((
                    r.player_id.clone(),
                    def.order.rank_key(r.value).to_string(),
                    member(&r.player_id, r.version),
                    r.name.clone(),
                    r.version,
                )),
                _ if m.is_none() && suspects[*player].is_none() => {}
                _ => {
                    let seen = m.or_else(|| suspects[*player].clone()).unwrap_or_default();
                    fixes.push(((*player).to_owned(), String::new(), seen, String::new(), 0));
                }
            }
        }
        if fixes.is_empty() {
            return Ok(0);
        }
        let repaired: i64 = self
            .call("repairing drift", |mut c| async move {
                let mut inv = self.invocation(&self.scripts.repair, board, period);
                inv.arg(fence);
                for f in &fixes {
                    inv.arg(&f.0).arg(&f.1).arg(&f.2).arg(&f.3).arg(f.4);
                }
                inv.invoke_async(&mut c).await
            })
            .await
            .context("Redis is unavailable")?;
        Ok(repaired as u64)
    }

    /// For each row: the member Redis's players hash holds for it, and whether the sorted set
    /// holds the row exactly (its member at its rank key).
    async fn held(
        &self,
        z: &str,
        members: &str,
        order: Order,
        rows: &[BoardRow],
    ) -> anyhow::Result<Vec<(Option<String>, bool)>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.player_id.as_str()).collect();
        let expected: Vec<String> = rows
            .iter()
            .map(|r| member(&r.player_id, r.version))
            .collect();
        let (held, scores): (Vec<Option<String>>, Vec<Option<f64>>) = self
            .call("checking drift", |mut c| async move {
                redis::pipe()
                    .cmd("HMGET")
                    .arg(members)
                    .arg(&ids)
                    .cmd("ZMSCORE")
                    .arg(z)
                    .arg(&expected)
                    .query_async(&mut c)
                    .await
            })
            .await
            .context("Redis is unavailable")?;
        Ok(rows
            .iter()
            .zip(held.into_iter().zip(scores))
            .map(|(r, (m, score))| {
                let exact = score.is_some_and(|s| s as i64 == order.rank_key(r.value));
                (m, exact)
            })
            .collect())
    }

    /// The member Redis holds for each player (`None` where it holds none).
    async fn members_of(&self, key: &str, players: &[&str]) -> anyhow::Result<Vec<Option<String>>> {
        if players.is_empty() {
            return Ok(Vec::new());
        }
        self.call("checking drift", |mut c| async move {
            redis::cmd("HMGET")
                .arg(key)
                .arg(players)
                .query_async(&mut c)
                .await
        })
        .await
        .context("Redis is unavailable")
    }
}
