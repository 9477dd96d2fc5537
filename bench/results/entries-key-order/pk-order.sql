-- The batch's entry upsert and read against two copies of a benchmark's entries (3,000 rows, three
-- boards, after a 3-board run at 256 in flight), keyed board first (e_bpp) and player first (e_pbp),
-- run in psql on that run's database; then 40 times, alternating: EXPLAIN (ANALYZE, TIMING OFF)
-- EXECUTE u1/u2/r1/r2 with the same 275 keys; medians of the last 35 in results.md.
\set QUIET on
DROP TABLE IF EXISTS e_bpp, e_pbp;
CREATE TABLE e_bpp (LIKE entries INCLUDING DEFAULTS); ALTER TABLE e_bpp ADD PRIMARY KEY (board_id, period, player_id);
CREATE INDEX ON e_bpp (board_id, period, rank_key, reached_version);
CREATE TABLE e_pbp (LIKE entries INCLUDING DEFAULTS); ALTER TABLE e_pbp ADD PRIMARY KEY (player_id, board_id, period);
CREATE INDEX ON e_pbp (board_id, period, rank_key, reached_version);
INSERT INTO e_bpp SELECT * FROM entries; INSERT INTO e_pbp SELECT * FROM entries;
ANALYZE e_bpp; ANALYZE e_pbp;
SELECT array_agg(board_id) b, array_agg(period) p, array_agg(player_id) pl FROM (SELECT * FROM entries ORDER BY random() LIMIT 275) x \gset
SET plan_cache_mode = force_generic_plan;
PREPARE u1(text[],text[],text[]) AS INSERT INTO e_bpp (board_id, period, player_id, value, rank_key, reached_version)
  SELECT b, p, pl, 1, (random()*1000)::bigint, 1 FROM UNNEST($1,$2,$3) k(b,p,pl)
  ON CONFLICT (board_id, period, player_id) DO UPDATE SET value = EXCLUDED.value, rank_key = EXCLUDED.rank_key, reached_version = EXCLUDED.reached_version, reached_at = now();
PREPARE u2(text[],text[],text[]) AS INSERT INTO e_pbp (board_id, period, player_id, value, rank_key, reached_version)
  SELECT b, p, pl, 1, (random()*1000)::bigint, 1 FROM UNNEST($1,$2,$3) k(b,p,pl)
  ON CONFLICT (board_id, period, player_id) DO UPDATE SET value = EXCLUDED.value, rank_key = EXCLUDED.rank_key, reached_version = EXCLUDED.reached_version, reached_at = now();
PREPARE r1(text[],text[],text[]) AS SELECT count(e.value) FROM UNNEST($1,$2,$3) k(board_id,period,player_id) JOIN e_bpp e USING (board_id, period, player_id);
PREPARE r2(text[],text[],text[]) AS SELECT count(e.value) FROM UNNEST($1,$2,$3) k(board_id,period,player_id) JOIN e_pbp e USING (board_id, period, player_id);
EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) EXECUTE u2(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE u1(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE r1(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE r2(:'b',:'p',:'pl');
EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) EXECUTE u2(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE u1(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE r1(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE r2(:'b',:'p',:'pl');
EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) EXECUTE u2(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE u1(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE r1(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE r2(:'b',:'p',:'pl');
EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) EXECUTE u2(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE u1(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE r1(:'b',:'p',:'pl'); EXPLAIN (ANALYZE, TIMING OFF) EXECUTE r2(:'b',:'p',:'pl');
