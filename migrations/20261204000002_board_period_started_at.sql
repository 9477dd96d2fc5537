-- `POST /admin/boards/{id}/close-period` ends a board's current period before its scheduled
-- end: the period closes then, and the next one runs from that instant to the schedule's next
-- reset. `period_started_at` is that instant (null while the periods are the schedule's).
ALTER TABLE boards ADD COLUMN period_started_at timestamptz;
