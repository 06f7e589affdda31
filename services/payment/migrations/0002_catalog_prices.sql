-- Payments are charged the catalog price: `amount` is now the reservation's priced total, set
-- once inventory-service has reserved and priced the order's stock (NULL before that, and for a
-- payment declined or voided before it was priced). What the caller expected to pay, if it said,
-- is `requested_amount` (compared on every repeat, like `items`, whose lines now carry the
-- caller's expected `unit_price` when it sent one). `priced_items` are the lines at the
-- catalog's prices. A payment may also be voided because a price was not the one expected.
ALTER TABLE payments ALTER COLUMN amount DROP NOT NULL;
ALTER TABLE payments
    ADD COLUMN requested_amount bigint CHECK (requested_amount > 0),
    ADD COLUMN priced_items jsonb NOT NULL DEFAULT '[]'::jsonb;

-- Before this migration the amount was the caller's: keep it as what was asked for, and as what
-- was charged only where something was.
UPDATE payments SET requested_amount = amount;
UPDATE payments SET amount = NULL WHERE status NOT IN ('CAPTURED', 'REFUNDED');

ALTER TABLE payments DROP CONSTRAINT payments_failure_reason_check;
ALTER TABLE payments ADD CONSTRAINT payments_failure_reason_check
    CHECK (failure_reason IN ('declined', 'out_of_stock', 'price_changed'));
ALTER TABLE payments ADD CONSTRAINT payments_charged_have_an_amount
    CHECK (status NOT IN ('CAPTURED', 'REFUNDED') OR amount IS NOT NULL);
