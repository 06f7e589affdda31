-- One row per delivered notification; (order_id, kind) is unique, which is what makes a repeated
-- delivery from order-service's outbox harmless.
CREATE TABLE notifications (
    id           uuid PRIMARY KEY,
    order_id     uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('order_confirmed', 'order_failed')),
    message      text NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, kind)
);
