#!/usr/bin/env bash
# Control-plane benchmark of `rocta serve --drivers noop` (issue 2 figures; BENCHMARKS.md).
# Loopback only; every run is bounded in count and time.
#   bench/control_plane.sh            # full run (~1 min after the release build)
#   DB_URL=postgresql://... bench/control_plane.sh   # on another database ([database] connection)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release --locked --bin rocta --bin rocta-bench
work=$(mktemp -d)
port=${PORT:-19876}
url=http://127.0.0.1:$port
printf '[database]\nconnection = "%s"\n' "${DB_URL:-}" >"$work/rocta.toml"
./target/release/rocta serve --drivers noop --config "$work/rocta.toml" --data-dir "$work/data" \
  --api-bind 127.0.0.1:$port >"$work/out" 2>"$work/err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "listening" "$work/out" && break; sleep 0.05; done
B="./target/release/rocta-bench --url $url"
echo "== machine: $(nproc) cores, $(uname -r), $(date -u +%F), database: ${DB_URL:-sqlite}"
$B create --n "${N_CREATE:-200}"
$B tree --n "${N_TREE:-50}"
$B members --clients 1 --seconds "${SECONDS_MEMBERS:-10}"
$B members --clients 8 --seconds "${SECONDS_MEMBERS:-10}"
one=$($B fill --count 200)
echo "== GET list of 200 load balancers (project bench-list, unpaginated)"
wrk -t2 -c16 -d"${WRK_SECONDS:-10}"s -H "X-Project-Id: bench-list" -H "X-Roles: member" \
  "$url/v2/lbaas/loadbalancers" | grep -E "Requests/sec|Latency|requests in|Non-2xx"
wrk -t2 -c16 -d"${WRK_SECONDS:-10}"s --latency -H "X-Project-Id: bench-list" -H "X-Roles: member" \
  "$url/v2/lbaas/loadbalancers" | grep -E " 99%"
echo "== GET one load balancer"
wrk -t2 -c16 -d"${WRK_SECONDS:-10}"s --latency -H "X-Project-Id: bench-list" \
  "$url/v2/lbaas/loadbalancers/$one" | grep -E "Requests/sec| 99%|Non-2xx"
echo "== rocta serve RSS after the run: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
