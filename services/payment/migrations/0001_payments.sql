-- One payment per order. `order_id` is unique: that is what makes `POST /api/v1/payments`
-- idempotent per order. `items` holds the order's lines sorted by SKU
-- (`[{"sku": …, "quantity": …}]`); with amount, currency and method it is compared on every
-- repeat, and it is what gets reserved with inventory-service.
--
-- AUTHORIZED is the only non-final status: the stock is not settled yet, and repeating the same
-- request resumes from here. VOIDED and DECLINED carry a failure reason; no other status does.
CREATE TABLE payments (
    id             uuid        PRIMARY KEY,
    order_id       uuid        NOT NULL UNIQUE,
    status         text        NOT NULL
                               CHECK (status IN ('AUTHORIZED', 'CAPTURED', 'VOIDED', 'DECLINED', 'REFUNDED')),
    failure_reason text        NULL CHECK (failure_reason IN ('declined', 'out_of_stock')),
    amount         bigint      NOT NULL CHECK (amount > 0),
    currency       text        NOT NULL,
    payment_method text        NOT NULL,
    items          jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('VOIDED', 'DECLINED')) = (failure_reason IS NOT NULL))
);
