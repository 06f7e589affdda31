-- Prices come from inventory-service's catalog, never from the client. `items` lines are now
-- `{sku, quantity, expected_unit_price?, unit_price}`: what the client expected to pay per unit
-- (if it said) and what was charged (null until the payment is captured). `total_amount` is the
-- charged total, null until then. Before this migration the client's `unit_price` was both;
-- it becomes the expectation, and stays the charged price of orders that were confirmed.
ALTER TABLE orders ALTER COLUMN total_amount DROP NOT NULL;
UPDATE orders o SET items = (
    SELECT jsonb_agg(
               jsonb_build_object('sku', l->'sku', 'quantity', l->'quantity',
                                  'expected_unit_price', l->'unit_price',
                                  'unit_price', CASE WHEN o.status = 'CONFIRMED'
                                                     THEN l->'unit_price' END)
               ORDER BY n)
      FROM jsonb_array_elements(o.items) WITH ORDINALITY AS t(l, n));
UPDATE orders SET total_amount = NULL WHERE status <> 'CONFIRMED';

-- Cancellation: a CONFIRMED order becomes CANCELLING (refund and stock return in progress,
-- resumable) and then CANCELLED. Every order that was charged names its payment and total.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('PENDING', 'CONFIRMED', 'FAILED', 'CANCELLING', 'CANCELLED'));
ALTER TABLE orders DROP CONSTRAINT orders_check1;
ALTER TABLE orders ADD CONSTRAINT orders_charged_orders_name_payment_and_total
    CHECK (status NOT IN ('CONFIRMED', 'CANCELLING', 'CANCELLED')
           OR (payment_id IS NOT NULL AND total_amount IS NOT NULL));

DROP INDEX orders_pending_since;
CREATE INDEX orders_unsettled_since ON orders (updated_at) WHERE status IN ('PENDING', 'CANCELLING');

ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('order_confirmed', 'order_failed', 'order_cancelled'));
