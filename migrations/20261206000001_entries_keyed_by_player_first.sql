-- An entry's primary key leads with the player: (player_id, board_id, period) instead of
-- (board_id, period, player_id). The same three columns, so it is the same constraint to every
-- query and to `ON CONFLICT (board_id, period, player_id)`; two things change.
--
-- A player's entries on every board and period (what a ban or an unban reads, to take them off
-- the Redis boards or put them back) are one range of the key instead of a scan of the whole
-- table, which grows with every board and every period ever played: 46 ms against 0.08 ms in
-- a table of a million entries, and no further index for every score update to write.
--
-- And each lookup of the key is cheaper. A score update probes it for each of its boards (the
-- batch's read), then probes and inserts into it again (the upsert of an entry that moved is a
-- new row version, since the rank key is indexed). Led by the board and the period, which most
-- keys share, each comparison on the way down compared two equal strings before reaching the
-- player; led by the player, most end at the first column. In a copy of a benchmark's table,
-- the batch's upsert of 275 entries took 17-29% less time and its read of them 15-18% less (two
-- runs, the copies' order swapped); end to end, within this machine's noise (BENCHMARKS.md).
--
-- Scans of a board in a period go by `entries_order_idx`, which keeps its board-first order.
-- The key's index is rebuilt, the table is not rewritten; `entries` is locked against reads
-- and writes until the migration commits (0.85 s for a million entries), and a wait for the
-- lock is bounded as in 20261205000001: `migrate` is simply run again.
SET LOCAL lock_timeout = '10s';
ALTER TABLE entries DROP CONSTRAINT entries_pkey,
    ADD CONSTRAINT entries_pkey PRIMARY KEY (player_id, board_id, period);
