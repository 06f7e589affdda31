-- Orders, keyed by id and by the client's idempotency key. request_hash is the SHA-256 of the
-- parsed request, so a reused key with a different body is recognised.
CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    request_hash     text NOT NULL,
    status           text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'FAILED')),
    failure_reason   text,
    customer_id      text NOT NULL,
    currency         text NOT NULL,
    total_amount     bigint NOT NULL CHECK (total_amount > 0),
    payment_method   text NOT NULL,
    items            jsonb NOT NULL,
    payment_id       uuid,
    trace_id         text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'FAILED') = (failure_reason IS NOT NULL)),
    CHECK (status <> 'CONFIRMED' OR payment_id IS NOT NULL)
);

-- The reconciler's work list.
CREATE INDEX orders_pending_since ON orders (updated_at) WHERE status = 'PENDING';
CREATE INDEX orders_by_status ON orders (status, id DESC);

-- Notifications to deliver to notify-service, written in the same transaction that settles the
-- order, delivered by the dispatcher with retries.
CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    order_id         uuid NOT NULL REFERENCES orders (id),
    kind             text NOT NULL CHECK (kind IN ('order_confirmed', 'order_failed')),
    message          text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, kind)
);

CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
