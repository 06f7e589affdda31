-- A cancelled order is announced too (`order_cancelled`, after its `order_confirmed`).
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('order_confirmed', 'order_failed', 'order_cancelled'));
