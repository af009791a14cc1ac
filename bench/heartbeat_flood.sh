#!/usr/bin/env bash
# Heartbeat flood (issue 4 figures): `rocta serve --drivers noop` on SQLite with a fixed
# heartbeat port and key, 2,000 load balancers (one amphora each), then `rocta-bench flood` at
# increasing offered rates. Reports processed/s and shed per step. Loopback only, bounded.
# Usage: bash bench/heartbeat_flood.sh [lbs] [rates]   (DB_URL=... for another database)
set -euo pipefail
cd "$(dirname "$0")/.."
lbs=${1:-2000}
rates=${2:-10000,25000,50000,75000,100000}
cargo build --release --locked --bin rocta --bin rocta-bench >/dev/null
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/rocta.toml" <<CFG
[health_manager]
bind_port = $port
heartbeat_key = "flood-key"
heartbeat_timeout = 3600.0
health_check_interval = 0.1
[database]
connection = "${DB_URL:-}"
CFG
./target/release/rocta serve --drivers noop --config "$work/rocta.toml" --data-dir "$work/data" \
  --api-bind 127.0.0.1:0 >"$work/out" 2>"$work/err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
url=""
for _ in $(seq 200); do
  url=$(sed -n 's/.*API listening on //p' "$work/out")
  [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || { cat "$work/err"; exit 1; }
./target/release/rocta-bench --url "$url" flood --hm "127.0.0.1:$port" --key flood-key \
  --lbs "$lbs" --rates "$rates" --secs 4 --metrics "$work/data/health-manager.prom"
echo "rocta serve RSS: $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$pid/status)"
