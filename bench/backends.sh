#!/usr/bin/env bash
# The control-plane and heartbeat benchmarks on each store backend, side by side in one run
# (issue 13 figures; BENCHMARKS.md): SQLite (the embedded default), then a fresh database on the
# PostgreSQL and the MariaDB/MySQL server on loopback (created here, dropped after).
# Usage: bash bench/backends.sh [sqlite,postgresql,mysql]
set -euo pipefail
cd "$(dirname "$0")/.."
backends=${1:-sqlite,postgresql,mysql}
db=rocta_bench_$$
cleanup() {
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
fresh() {
  cleanup
  case $1 in
    sqlite) echo "" ;;
    postgresql) psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" >/dev/null
      echo "postgresql://postgres@127.0.0.1:5432/$db" ;;
    mysql) mysql -h 127.0.0.1 -u root -e "CREATE DATABASE $db" >/dev/null
      echo "mysql://root@127.0.0.1:3306/$db" ;;
  esac
}
for b in ${backends//,/ }; do
  echo "######## $b"
  DB_URL=$(fresh "$b") bash bench/control_plane.sh
  DB_URL=$(fresh "$b") bash bench/heartbeat_flood.sh "${LBS:-1000}" "${RATES:-10000,25000,50000,75000}"
done
