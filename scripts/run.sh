#!/usr/bin/env bash
# The demo in one command: toolchains and pkg/ (scripts/setup.sh), the relay in release, then
# the relay serving the demo page (www/ at /) and the built package (pkg/ at /pkg/) on one origin.
#
#   scripts/run.sh                                   # http://127.0.0.1:8787/
#   ANTS_RELAY_LISTEN=0.0.0.0:9000 scripts/run.sh    # another address
#   ANTS_RELAY_DATA=/tmp/demo scripts/run.sh         # another data directory (default ./relay-data)
#   ANTS_DEMO_RELAY2=127.0.0.1:8788 scripts/run.sh   # also a second relay (data in <data>-2): the
#                                                    # page's relay-honesty panel compares the two
#   ANTS_RELAY_BIN=path/to/ants-relay scripts/run.sh # a relay binary built elsewhere: no release
#                                                    # build (tests/e2e/run-script.test.mjs)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
listen="${ANTS_RELAY_LISTEN:-127.0.0.1:8787}"
data="${ANTS_RELAY_DATA:-$root/relay-data}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

scripts/setup.sh
relay_bin="${ANTS_RELAY_BIN:-}"
if [[ -z "$relay_bin" ]]; then
  # One binary for both stores: feature `nats` (which includes `relay`) also lets it run as a
  # cluster frontend (scripts/cluster.sh builds the same binary, so neither rebuilds the other's).
  echo "run: cargo build --release --features nats --bin ants-relay"
  cargo build --release --features nats --bin ants-relay
  relay_bin="$target_dir/release/ants-relay"
fi

host="${listen%:*}"
port="${listen##*:}"
[[ "$host" == 0.0.0.0 || "$host" == "[::]" ]] && host=127.0.0.1
url="http://$host:$port/"
relay2="${ANTS_DEMO_RELAY2:-}"
if [[ -n "$relay2" ]]; then
  "$relay_bin" --listen "$relay2" --data "$data-2" &
  second=$!
  # On Ctrl-C both relays get SIGINT and may already be gone: neither step may fail the script
  # (under `set -e` a failing kill would end it before it waits for the second relay).
  trap 'kill "$second" 2>/dev/null || true; wait "$second" 2>/dev/null || true' EXIT
  url="$url?relay2=ws://$relay2/ws"
fi
echo
echo "  ants-coord demo: open $url"
echo "  (relay WebSocket ws://$host:$port/ws, data in $data; Ctrl-C stops it)"
[[ -n "$relay2" ]] && echo "  (second relay ws://$relay2/ws, data in $data-2)"
echo
if [[ -n "$relay2" ]]; then
  "$relay_bin" --listen "$listen" --data "$data" --www "$root/www" --pkg "$root/pkg"
else
  exec "$relay_bin" --listen "$listen" --data "$data" --www "$root/www" --pkg "$root/pkg"
fi
