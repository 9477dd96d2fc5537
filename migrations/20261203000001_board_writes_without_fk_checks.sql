-- Score events and entries stop checking their board, and events their player, against
-- `boards` and `users` row by row. Both are checked where it matters: the batch reads every
-- player and board it applies to in its transaction, under the writers' lock, and refuses
-- unknown ones (UNKNOWN_PLAYER, UNKNOWN_BOARD). Neither is ever deleted (a board is hidden
-- with public = false; a player is banned). What these foreign keys cost was a trigger, a
-- query and a key-share lock of the referenced row for every event a batch appends: a fifth
-- of the batch's write statement, and three times that for a token on three boards.
-- (entries.player_id keeps its foreign key: it is checked only when an entry is created.)
ALTER TABLE score_events DROP CONSTRAINT score_events_board_id_fkey;
ALTER TABLE score_events DROP CONSTRAINT score_events_player_id_fkey;
ALTER TABLE entries DROP CONSTRAINT entries_board_id_fkey;
