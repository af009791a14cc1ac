#!/usr/bin/env bash
# Load balancer create -> ACTIVE on real amphorae, with and without spares (issue 4 figures):
# `rocta serve` on the default drivers with [house_keeping] spare_amphora_pool_size = N (the
# pool is warm before measuring), then `rocta-bench create`; the same with no spares.
# Loopback only, bounded. Usage: bash bench/spares.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
cargo build --release --locked --bin rocta --bin rocta-bench >/dev/null
public=0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b
measure() {
  local pool=$1 work url pid
  work=$(mktemp -d)
  printf '[health_manager]\nbind_port = 0\n[house_keeping]\nspare_amphora_pool_size = %s\nspare_check_interval = 0.1\n' \
    "$pool" >"$work/rocta.toml"
  ./target/release/rocta serve --drivers local --config "$work/rocta.toml" --data-dir "$work/data" \
    --api-bind 127.0.0.1:0 >"$work/out" 2>"$work/err" &
  pid=$!
  url=""
  for _ in $(seq 200); do
    url=$(sed -n 's/.*API listening on //p' "$work/out")
    [ -n "$url" ] && break
    sleep 0.05
  done
  for _ in $(seq 600); do
    ready=$(curl -s -H 'X-Project-Id: bench' "$url/v2/octavia/amphorae" | grep -o '"READY"' | wc -l || true)
    [ "$ready" -ge "$pool" ] && break
    sleep 0.1
  done
  echo -n "spare_amphora_pool_size=$pool: "
  ./target/release/rocta-bench --url "$url" --poll-ms 1 --subnet $public create --n "$runs"
  kill $pid; wait $pid 2>/dev/null || true
  # Amphorae outlive the control plane by design: end them (their directories are in $work).
  pkill -9 -f "$work" 2>/dev/null || true
  rm -rf "$work"
}
measure 0
measure "$runs"
