-- The outbox keeps delivered rows (their history is the audit trail), so every query over the
-- undelivered ones must not walk the delivered: without this index the dispatcher's
-- "due entries ORDER BY id" scanned the primary key past every delivered row, and the depth
-- gauge counted them, both growing with the table's history instead of with the backlog.
CREATE INDEX outbox_undelivered ON outbox (id) WHERE delivered_at IS NULL;
