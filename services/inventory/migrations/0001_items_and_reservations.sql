-- Stock per SKU. A unit is in exactly one of three buckets: `available` (can be reserved),
-- `reserved` (held for an order that is not final yet) or `committed` (sold). The CHECKs are the
-- last line of defence: no code path may ever drive a bucket below zero.
CREATE TABLE items (
    sku        text        PRIMARY KEY,
    available  bigint      NOT NULL CHECK (available >= 0),
    reserved   bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    committed  bigint      NOT NULL DEFAULT 0 CHECK (committed >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One reservation decision per order. `items` is the order's lines sorted by SKU
-- (`[{"sku": …, "quantity": …}]`), compared on every repeat of the request.
--
-- REJECTED records that the stock was short when the order first asked (`rejected_sku` names
-- the first short line): the decision is kept so that a repeat, even after a restock, gets the
-- same answer and an order whose payment was voided can never end up holding stock. A REJECTED
-- row holds no stock and is never shown as a reservation (GET, commit, release answer 404).
CREATE TABLE reservations (
    order_id     uuid        PRIMARY KEY,
    status       text        NOT NULL
                             CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED', 'REJECTED')),
    items        jsonb       NOT NULL,
    rejected_sku text        NULL CHECK ((status = 'REJECTED') = (rejected_sku IS NOT NULL)),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
