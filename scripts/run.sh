#!/usr/bin/env bash
# The demo in one command: toolchains and pkg/ (scripts/setup.sh), the relay in release, then
# the relay serving the demo page (www/ at /) and the built package (pkg/ at /pkg/) on one origin.
#
#   scripts/run.sh                                   # http://127.0.0.1:8787/
#   ANTS_RELAY_LISTEN=0.0.0.0:9000 scripts/run.sh    # another address
#   ANTS_RELAY_DATA=/tmp/demo scripts/run.sh         # another data directory (default ./relay-data)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
listen="${ANTS_RELAY_LISTEN:-127.0.0.1:8787}"
data="${ANTS_RELAY_DATA:-$root/relay-data}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

scripts/setup.sh
echo "run: cargo build --release --features relay --bin ants-relay"
cargo build --release --features relay --bin ants-relay

host="${listen%:*}"
port="${listen##*:}"
[[ "$host" == 0.0.0.0 || "$host" == "[::]" ]] && host=127.0.0.1
echo
echo "  ants-coord demo: open http://$host:$port/"
echo "  (relay WebSocket ws://$host:$port/ws, data in $data; Ctrl-C stops it)"
echo
exec "$target_dir/release/ants-relay" --listen "$listen" --data "$data" --www "$root/www" --pkg "$root/pkg"
