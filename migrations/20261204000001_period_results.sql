-- Period results (DESIGN.md, "Boards and periods"): when a period of a board that resets
-- closes, its final standings are written here once, and the event announcing them is put in
-- the outbox in the same transaction, one row per webhook endpoint.

-- A closed period: its bounds, when it was closed, its top `results_size` entries as the API
-- shows them ([{"rank","player_id","name","score"}]), and the exact body of its
-- `period.closed` event (so an instance that knows endpoints the closing one did not can
-- still queue it). Written once: the primary key is what makes closing idempotent when every
-- instance tries.
CREATE TABLE period_results (
    board_id  text COLLATE "C" NOT NULL REFERENCES boards (id),
    period    text COLLATE "C" NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at   timestamptz NOT NULL,
    closed_at timestamptz NOT NULL DEFAULT now(),
    standings jsonb NOT NULL,
    event     text NOT NULL,
    PRIMARY KEY (board_id, period),
    CHECK (starts_at < ends_at)
);
-- The recently closed ones, which every instance queues for its own endpoints.
CREATE INDEX period_results_closed_idx ON period_results (closed_at);

-- Events for the game's backend, delivered at least once: a deliverer takes a due row with
-- FOR UPDATE SKIP LOCKED (so one instance delivers it), posts `body` signed, and marks it
-- delivered or schedules the next attempt with backoff. `event_id` is what receivers drop
-- duplicates by.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    event_id        text NOT NULL,
    endpoint        text NOT NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz,
    UNIQUE (event_id, endpoint)
);
-- What is still to deliver, by when it is due: small however long the outbox grows.
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
