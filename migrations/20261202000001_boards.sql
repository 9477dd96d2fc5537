-- Many boards (DESIGN.md, "Boards and periods"). Every board divides time into periods; the
-- period id is its start instant in RFC 3339 UTC, or 'all' for a board that never resets, so
-- schedules can come later without another migration of the score tables.
--
-- Board ids and period ids are ASCII identifiers, compared byte for byte (COLLATE "C"): they
-- lead the keys of the indexes every score write touches, and a locale's collation would make
-- each comparison a call into the C library's strcoll for nothing.

-- A board: how values combine (operator), which way is better (sort_order), the bounds of one
-- token's value, and whether players can see it. reset/timezone are stored now and fixed once
-- the board has a score, like order and operator.
CREATE TABLE boards (
    id           text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    title        text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 64),
    sort_order   text NOT NULL CHECK (sort_order IN ('desc', 'asc')),
    operator     text NOT NULL CHECK (operator IN ('sum', 'best', 'latest')),
    reset        text NOT NULL DEFAULT 'never',
    timezone     text NOT NULL DEFAULT 'UTC',
    value_min    bigint NOT NULL,
    value_max    bigint NOT NULL,
    public       boolean NOT NULL DEFAULT true,
    results_size integer NOT NULL DEFAULT 100 CHECK (results_size BETWEEN 1 AND 1000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (value_min <= value_max)
);

-- The board every route without a board name stands for: all-time, higher is better, points
-- add up, one token worth at most ±1,000,000 (the bounds action tokens always had).
INSERT INTO boards (id, title, sort_order, operator, value_min, value_max)
VALUES ('global', 'All time', 'desc', 'sum', -1000000, 1000000);

-- A player's standing on one board in one period. reached_version is the id of the event that
-- set the current value: the tie rule ("whoever reached the value first ranks higher")
-- compares it. rank_key is the value as the board orders it (the value for 'asc', its negation
-- for 'desc'), so one index and one comparison, (rank_key, reached_version) ascending, serve
-- both orders in every query; the application writes it with the value.
CREATE TABLE entries (
    board_id        text COLLATE "C" NOT NULL REFERENCES boards (id),
    period          text COLLATE "C" NOT NULL,
    player_id       text NOT NULL REFERENCES users (player_id) ON DELETE CASCADE,
    value           bigint NOT NULL CHECK (value BETWEEN -9007199254740992 AND 9007199254740992),
    rank_key        bigint NOT NULL CHECK (rank_key = value OR rank_key = -value),
    reached_version bigint NOT NULL,
    reached_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (board_id, period, player_id)
);
-- The board order, for the top-N scan, keyset pages and rank counts of either order.
CREATE INDEX entries_order_idx ON entries (board_id, period, rank_key, reached_version);

-- Today's totals become the global board's entries, with the same values, the same events
-- and so the same ranks.
INSERT INTO entries (board_id, period, player_id, value, rank_key, reached_version, reached_at)
SELECT 'global', 'all', player_id, score, -score, reached_version, reached_at FROM scores;
DROP TABLE scores;

-- A score event now belongs to one board and period: a token naming three boards writes three
-- events (ids stay the global, monotonic versions). pts is the token's value, score_after the
-- board's value for the player after the event. Exactly once per (token, board) follows from
-- consumed_tokens (one row per token, in the same transaction) and a token's boards being
-- distinct, so no further index is written per event.
ALTER TABLE score_events ADD COLUMN board_id text COLLATE "C" NOT NULL DEFAULT 'global' REFERENCES boards (id);
ALTER TABLE score_events ADD COLUMN period text COLLATE "C" NOT NULL DEFAULT 'all';
ALTER TABLE score_events ALTER COLUMN board_id DROP DEFAULT;
ALTER TABLE score_events ALTER COLUMN period DROP DEFAULT;
-- A board's version in a period: the id of its newest event, written by the batch that
-- appends the events (one row per board a batch touches, not one more index entry per event).
-- Snapshots, pages and the poller read it; it is the period's row for what periods add later.
CREATE TABLE board_periods (
    board_id text COLLATE "C" NOT NULL REFERENCES boards (id),
    period   text COLLATE "C" NOT NULL,
    version  bigint NOT NULL,
    PRIMARY KEY (board_id, period)
);
INSERT INTO board_periods (board_id, period, version)
SELECT 'global', 'all', coalesce(max(id), 0) FROM score_events;
