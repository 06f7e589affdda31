#!/usr/bin/env bash
# seed-stock.sh TENANT [SKU=QTY@PRICE ...]: give a tenant's inventory some stock and its catalog
# price (minor units of EUR per unit) (kind cluster).
#
# Stock is seeded by the operator with SQL inside the tenant's PostgreSQL pod (kubectl exec),
# after inventory-service is ready, i.e. after its own migrations created the `items` table.
# Deliberately no mesh edge: the admin API (/api/v1/items) has no caller in the call graph and
# the AuthorizationPolicies do not open it. Existing SKUs are left untouched (re-running is
# harmless and never breaks "initial stock = available + committed").
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tenant="${1:?usage: seed-stock.sh TENANT [SKU=QTY@PRICE ...]}"
shift
items=("$@")
((${#items[@]} > 0)) || items=(SKU-001=100@1999 SKU-002=100@2499 SKU-003=100@999)

values=()
for item in "${items[@]}"; do
  sku="${item%%=*}" rest="${item#*=}"
  qty="${rest%%@*}" price="${rest#*@}"
  [[ "${sku}" =~ ^[A-Z0-9][A-Z0-9-]{0,63}$ && "${qty}" =~ ^[0-9]{1,12}$ && "${price}" =~ ^[1-9][0-9]{0,11}$ ]] \
    || die "bad item '${item}' (want SKU=QTY@PRICE)"
  values+=("('${sku}', ${qty}, ${price}, 'EUR')")
done
sql="INSERT INTO items (sku, available, unit_price, currency) VALUES $(IFS=,; printf '%s' "${values[*]}") ON CONFLICT (sku) DO NOTHING"

ns="${tenant}-orders"
k -n "${ns}" rollout status deploy/inventory-service --timeout=300s >/dev/null
# Local socket connections inside the pod use the image's trust authentication.
k -n "${ns}" exec statefulset/postgres -c postgres -- \
  psql -v ON_ERROR_STOP=1 -U inventory -d inventory -c "${sql}" >/dev/null
info "${tenant}: stock seeded (${items[*]})"
