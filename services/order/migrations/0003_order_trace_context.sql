-- The trace context of the request that created the order, so that work finishing the order
-- later (the reconciler) can link its own trace to the original one.
ALTER TABLE orders ADD COLUMN trace_context jsonb NOT NULL DEFAULT '{}'::jsonb;
