-- Player ids and token ids (jti) are ASCII identifiers that are only ever looked up, never
-- sorted for people: they are compared byte for byte (COLLATE "C"), as board and period ids
-- already are. Under the database's own collation every comparison inside their indexes is a
-- call into the C library's strcoll: a lookup by player id in a 100,000-row index took 2.2x
-- as long under en_US.UTF-8 (the default of the official PostgreSQL image) as in byte order,
-- and every score update makes several such lookups and inserts (users, sessions,
-- consumed_tokens, entries, score_events) on the batch's one serial connection. Equality is
-- byte equality either way, so no lookup answers differently.
--
-- Every column that is compared with a player id or a token id changes together, so that no
-- join mixes the two collations (which would keep it from using an index). Only indexes are
-- rebuilt, the tables are not rewritten, but each table is locked against reads and writes
-- until the migration commits (seconds per ten million events on a large `score_events`).
--
-- All six locks are taken first, in one statement, so no index is rebuilt while a lock is
-- still awaited, and the wait is bounded: behind a long transaction of a running instance the
-- migration fails after 10 s instead of queueing every request behind it, and `migrate` (the
-- init container) or `serve` is simply run again.
SET LOCAL lock_timeout = '10s';
LOCK TABLE users, sessions, consumed_tokens, entries, score_events, admin_audit
    IN ACCESS EXCLUSIVE MODE;

ALTER TABLE users ALTER COLUMN player_id TYPE text COLLATE "C";
ALTER TABLE sessions ALTER COLUMN jti TYPE text COLLATE "C",
                     ALTER COLUMN player_id TYPE text COLLATE "C";
ALTER TABLE consumed_tokens ALTER COLUMN jti TYPE text COLLATE "C",
                            ALTER COLUMN player_id TYPE text COLLATE "C";
ALTER TABLE entries ALTER COLUMN player_id TYPE text COLLATE "C";
ALTER TABLE score_events ALTER COLUMN player_id TYPE text COLLATE "C",
                         ALTER COLUMN jti TYPE text COLLATE "C";
ALTER TABLE admin_audit ALTER COLUMN player_id TYPE text COLLATE "C";

-- A column's type change drops its planner statistics, and the statistics job only analyzes
-- tables never analyzed: a table that had statistics gets them back here, as the batch's plans
-- depend on them. One never analyzed (a new database) is left to that job, which analyzes it
-- once it holds rows; analyzing it empty here would mark it done with nothing in it.
DO $$
DECLARE
    analyzed text;
BEGIN
    FOR analyzed IN
        SELECT relname FROM pg_stat_user_tables
        WHERE schemaname = current_schema()
          AND relname IN ('users', 'sessions', 'consumed_tokens', 'entries', 'score_events',
                          'admin_audit')
          AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)
    LOOP
        EXECUTE format('ANALYZE %I', analyzed);
    END LOOP;
END
$$;
