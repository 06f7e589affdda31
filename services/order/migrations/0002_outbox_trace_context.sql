-- The trace context of the request that settled the order (W3C and B3 headers), so that the
-- dispatcher's delivery to notify-service continues that request's trace.
ALTER TABLE outbox ADD COLUMN trace_context jsonb NOT NULL DEFAULT '{}'::jsonb;
