-- The scoreboard's truth. Redis only ever holds copies of what is here.

-- Players. Guests have no password. Names are unique regardless of case, so "Ana" and "ana"
-- cannot both exist and impersonate each other on the board. name_key is the name lowercased
-- by the application with full Unicode rules ("ZOË" -> "zoë"), so uniqueness does not depend
-- on the database's locale.
CREATE TABLE users (
    player_id     text PRIMARY KEY CHECK (player_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 32),
    name_key      text NOT NULL,
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    banned_at     timestamptz
);
CREATE UNIQUE INDEX users_name_key ON users (name_key);

-- Issued sessions, so a logout can revoke one before its JWT expires. A session JWT whose
-- jti has no row here (minted by a trusted backend) is simply not revoked.
CREATE TABLE sessions (
    jti        text PRIMARY KEY,
    player_id  text NOT NULL REFERENCES users (player_id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Every change of a score, in order. The id is the leaderboard version: a snapshot at version
-- V includes exactly the events with id <= V (writers serialise on an advisory lock, so ids
-- commit in order). action is the catalog action, or 'admin:adjust' for a manual adjustment.
CREATE TABLE score_events (
    id          bigserial PRIMARY KEY,
    player_id   text NOT NULL REFERENCES users (player_id) ON DELETE CASCADE,
    jti         text,
    action      text NOT NULL,
    pts         bigint NOT NULL,
    score_after bigint NOT NULL,
    edge_region text,
    request_id  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX score_events_player_idx ON score_events (player_id, id);

-- A player's current total. reached_version is the id of the event that set the current
-- score: the tie rule ("whoever reached the score first ranks higher") compares it, exact even
-- for two players who reached a score in the same microsecond. reached_at is for people.
CREATE TABLE scores (
    player_id       text PRIMARY KEY REFERENCES users (player_id) ON DELETE CASCADE,
    score           bigint NOT NULL CHECK (score BETWEEN -9007199254740992 AND 9007199254740992),
    reached_version bigint NOT NULL,
    reached_at      timestamptz NOT NULL DEFAULT now()
);
-- The board order; serves the top-N scan and the rank count.
CREATE INDEX scores_board_idx ON scores (score DESC, reached_version ASC);

-- Redeemed action tokens. The primary key is what makes a score update apply exactly once:
-- the insert and the score change commit together or not at all. Rows past expires_at are
-- deleted by a periodic job; an expired token is refused before it gets here anyway.
CREATE TABLE consumed_tokens (
    jti        text PRIMARY KEY,
    player_id  text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX consumed_tokens_expires_at_idx ON consumed_tokens (expires_at);

-- Who changed what by hand, and why.
CREATE TABLE admin_audit (
    id         bigserial PRIMARY KEY,
    action     text NOT NULL,
    player_id  text,
    detail     jsonb NOT NULL DEFAULT '{}',
    request_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
