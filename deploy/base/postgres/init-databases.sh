#!/usr/bin/env bash
# Creates one role and one database per service, owned by that role.
# Run by the official postgres image from /docker-entrypoint-initdb.d on first start only
# (an empty data directory). Used by docker-compose.yml and by the Kubernetes StatefulSet.
#
#   ORDERMESH_DATABASES  space-separated database names, e.g. "orders inventory notify"
#   <NAME>_DB_PASSWORD   password of role <name> (e.g. ORDERS_DB_PASSWORD); the role and the
#                        database share the name. Dev defaults live in compose / kustomize.
#
# Inventory stock is NOT seeded here: inventory-service creates its tables with its own
# migrations at start-up, after this script has run. See deploy/README.md ("Seeding stock").
set -euo pipefail

: "${ORDERMESH_DATABASES:?set ORDERMESH_DATABASES, e.g. \"orders inventory notify\"}"

for db in ${ORDERMESH_DATABASES}; do
  if [[ ! "${db}" =~ ^[a-z][a-z0-9_]*$ ]]; then
    echo "init-databases: invalid database name '${db}'" >&2
    exit 1
  fi
  var="${db^^}_DB_PASSWORD"
  password="${!var:-}"
  if [[ -z "${password}" ]]; then
    echo "init-databases: ${var} is not set" >&2
    exit 1
  fi
  echo "init-databases: creating role and database '${db}'"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v db="${db}" -v pw="${password}" <<'SQL'
CREATE ROLE :"db" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"db";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
done
