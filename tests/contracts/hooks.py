"""Schemathesis hooks for `make test-contracts`: the request rules the services check that JSON
Schema cannot state, applied to the bodies schemathesis generates as *valid*.

The OpenAPI documents carry every rule that a schema can express (crates/commerce/src/schemas.rs).
The few left are cross-field rules over an order's lines, listed in README ("Three rules stay
outside the schemas") and in the fields' descriptions; without them a schema-valid body could
still be refused with 422 and schemathesis would report a positive case rejected. Each rule here
repairs a generated valid body so that it keeps to that rule, the same way a correct client
would; a body generated as invalid (negative mode) is left exactly as generated.

- every SKU at most once per body (commerce::values::parse_stock_lines): a later line with a SKU
  already listed is dropped;
- when every line carries an expected `unit_price`, their total Σ unit_price × quantity is at most
  MAX_AMOUNT minor units (commerce::values::expected_total): past it the expected prices, which are
  optional, are dropped;
- a payment's `amount` is that total (payment-service's domain::parse_payment): it is set to it,
  or dropped (it is optional) when there is no total of at least 1.

And two choices of this test's for the stateful phase, whose sequences start by creating
something and then follow the documents' links from it:

- its requests carry no `x-forwarded-client-cert`, as requests do without a mesh. The header is
  the mesh sidecar's, naming the caller: almost any value generated for it names no caller of this
  tenant and is refused (403), which would end most sequences at their first step. The other
  phases still send it with any value the document allows;
- a body it generates valid gets an `order_id` no earlier request used. Hypothesis draws the same
  few UUIDs from one seed in every phase, so the earlier phases have already paid, reserved or
  notified for them with other terms, and most creations would be refused as conflicts (409) with
  nothing to follow. The earlier phases keep the repeated ids, and so test those conflicts.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import TestPhase

# commerce::values::MAX_AMOUNT
MAX_AMOUNT = 1_000_000_000_000

# The operations whose bodies carry order lines (`items`), by path; the payment's also `amount`.
LINE_BODIES = {"/api/v1/orders", "/api/v1/payments", "/api/v1/reservations"}
PAYMENTS = "/api/v1/payments"

# The mesh's caller identity header (platform::tenancy::XFCC_HEADER).
XFCC = "x-forwarded-client-cert"


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """Generated cases (coverage, fuzzing and stateful phases)."""
    case = keep_rules(context, case)
    if case.meta is None or case.meta.phase.name != TestPhase.STATEFUL:
        return case
    if case.headers:
        case.headers = {name: value for name, value in case.headers.items() if name.lower() != XFCC}
    creates = context.operation is not None and context.operation.method.upper() == "POST"
    if creates and valid_body(case) and "order_id" in case.body:
        case.body["order_id"] = str(uuid.uuid4())
    return case


@schemathesis.hook
def before_add_examples(context: schemathesis.HookContext, examples: list[schemathesis.Case]) -> None:
    """Cases built from the documents' examples (examples phase)."""
    for case in examples:
        keep_rules(context, case)


def keep_rules(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """`case`, its body repaired to keep the rules above when it is meant to be valid."""
    operation = context.operation
    if operation is None or operation.method.upper() != "POST" or operation.path not in LINE_BODIES:
        return case
    if not valid_body(case):
        return case
    body = case.body
    if not isinstance(body.get("items"), list):
        return case
    if not all(isinstance(line, dict) for line in body["items"]):
        return case
    body["items"] = distinct_skus(body["items"])
    total = expected_total(body["items"])
    if total is not None and total > MAX_AMOUNT:
        for line in body["items"]:
            line.pop("unit_price", None)
        total = None
    if operation.path == PAYMENTS and body.get("amount") is not None:
        if total is not None and total >= 1:
            body["amount"] = total
        else:
            del body["amount"]
    case.body = body
    return case


def valid_body(case: schemathesis.Case) -> bool:
    """Whether `case` has a JSON object body generated as valid."""
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY):
        return False
    return isinstance(case.body, dict)


def distinct_skus(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines without those repeating an earlier line's SKU."""
    seen: set[Any] = set()
    kept = []
    for line in lines:
        sku = line.get("sku")
        if sku in seen:
            continue
        seen.add(sku)
        kept.append(line)
    return kept


def expected_total(lines: list[dict[str, Any]]) -> int | None:
    """Σ unit_price × quantity when every line expects a price (integers as JSON Schema reads
    them: 2.0 is 2), else None."""
    total = 0
    for line in lines:
        price, quantity = line.get("unit_price"), line.get("quantity")
        if not isinstance(price, (int, float)) or not isinstance(quantity, (int, float)):
            return None
        total += int(price) * int(quantity)
    return total
