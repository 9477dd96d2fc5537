-- Names that look alike are one name. A name is stored in NFC (composed) form for display;
-- name_key becomes its NFKC case fold (so "Zoë" typed composed or decomposed, "ﬁsh" and
-- "fish", "ANA" and "ana" are one key), and name_skeleton its confusable skeleton (UTS #39,
-- then case-folded), so "Ana" with a Cyrillic А cannot sit beside "Ana". Both are computed by
-- the application, which knows Unicode's tables; the database enforces their uniqueness.
--
-- name_rules says which rules a row's keys follow: 0 for rows written before this migration
-- (the application recomputes them once at start-up, oldest first; a row whose new keys would
-- collide with an older row's keeps its old key and no skeleton, so no existing player loses
-- their name or their login), 1 for the rules above.
ALTER TABLE users ADD COLUMN name_skeleton text;
ALTER TABLE users ADD COLUMN name_rules smallint NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX users_name_skeleton ON users (name_skeleton);
