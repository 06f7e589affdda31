-- The catalog price of each item lives beside its stock: minor units of `currency` per unit.
-- Rows that exist before this migration get 10.00 EUR; operators set the real price with
-- `PUT /api/v1/items/{sku}` (make up's seeding does).
ALTER TABLE items
    ADD COLUMN unit_price bigint NOT NULL DEFAULT 1000
        CHECK (unit_price > 0 AND unit_price <= 1000000000000),
    ADD COLUMN currency text NOT NULL DEFAULT 'EUR';
ALTER TABLE items ALTER COLUMN unit_price DROP DEFAULT, ALTER COLUMN currency DROP DEFAULT;

-- A reservation is priced when it is made: `priced_items` is `items` with each line's catalog
-- `unit_price` of that moment, `amount` their total, `currency` the order's. `items` keeps the
-- request as sent (expected prices included), compared on every repeat. REJECTED rows say why
-- (`rejected_reason`), so a repeat gets the same answer. RETURNED: sold, then given back
-- (the order was cancelled).
ALTER TABLE reservations
    ADD COLUMN currency text,
    ADD COLUMN priced_items jsonb,
    ADD COLUMN amount bigint CHECK (amount > 0),
    ADD COLUMN rejected_reason text CHECK (rejected_reason IN ('out_of_stock', 'price_changed'));

UPDATE reservations SET rejected_reason = 'out_of_stock' WHERE status = 'REJECTED';
UPDATE reservations r
   SET currency = 'EUR',
       priced_items = (SELECT jsonb_agg(line || jsonb_build_object('unit_price', i.unit_price)
                                        ORDER BY line->>'sku')
                         FROM jsonb_array_elements(r.items) AS line
                         JOIN items i ON i.sku = line->>'sku'),
       amount = (SELECT sum((line->>'quantity')::bigint * i.unit_price)
                   FROM jsonb_array_elements(r.items) AS line
                   JOIN items i ON i.sku = line->>'sku')
 WHERE r.status <> 'REJECTED';

ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED', 'RETURNED', 'REJECTED'));
ALTER TABLE reservations ADD CONSTRAINT reservations_rejected_reason_present
    CHECK ((status = 'REJECTED') = (rejected_reason IS NOT NULL));
-- Stock that was sold or given back was priced. (A RESERVED row is inserted first and priced
-- later in the same transaction, so no reader ever sees it unpriced; CHECKs cannot be deferred.)
ALTER TABLE reservations ADD CONSTRAINT reservations_priced
    CHECK (status IN ('REJECTED', 'RESERVED')
           OR (currency IS NOT NULL AND priced_items IS NOT NULL AND amount IS NOT NULL));
