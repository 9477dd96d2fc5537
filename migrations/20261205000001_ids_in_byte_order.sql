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
-- rebuilt, the tables are not rewritten; on a large `score_events` the rebuild of its player
-- index holds writes for as long as it takes (seconds per ten million events).
ALTER TABLE users ALTER COLUMN player_id TYPE text COLLATE "C";
ALTER TABLE sessions ALTER COLUMN jti TYPE text COLLATE "C",
                     ALTER COLUMN player_id TYPE text COLLATE "C";
ALTER TABLE consumed_tokens ALTER COLUMN jti TYPE text COLLATE "C",
                            ALTER COLUMN player_id TYPE text COLLATE "C";
ALTER TABLE entries ALTER COLUMN player_id TYPE text COLLATE "C";
ALTER TABLE score_events ALTER COLUMN player_id TYPE text COLLATE "C",
                         ALTER COLUMN jti TYPE text COLLATE "C";
ALTER TABLE admin_audit ALTER COLUMN player_id TYPE text COLLATE "C";
