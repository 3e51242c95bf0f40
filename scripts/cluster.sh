#!/usr/bin/env bash
# The relay as a cluster in one command: three nats-server processes as one JetStream cluster
# (scripts/nats-cluster.sh), two relay frontends on it sharing one relay key, each serving the
# demo page; Ctrl-C (or SIGTERM) stops everything.
#
#   scripts/cluster.sh                              # frontends on 127.0.0.1:8080 and :8081
#   ANTS_CLUSTER_PORT=9000 scripts/cluster.sh       # frontends on 9000 and 9001
#   ANTS_CLUSTER_DIR=/tmp/c scripts/cluster.sh      # state (NATS stores, frontends' data) there
#   NATS_PORT=14222 scripts/cluster.sh              # NATS clients on 14222-14224 (default 4222)
#   ANTS_RELAY_BIN=path/to/ants-relay scripts/cluster.sh   # a relay built elsewhere (with
#                                                           # feature nats): no release build
#   ANTS_STORE_OPTIONS=forward=off scripts/cluster.sh  # store options after the NATS addresses
#                                                      # (README "Cluster mode")
#
# State lives in ANTS_CLUSTER_DIR (default ./cluster-data): nats/ (the three servers' configs,
# logs and JetStream stores), frontend-1/ and frontend-2/ (the shared relay.key, each frontend's
# read mirror and Yjs rooms). A second run over the same directory restarts the same cluster.
# Needs nats-server and curl (scripts/setup.sh installs nats-server).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf 'cluster: %s\n' "$*"; }
fail() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

state="${ANTS_CLUSTER_DIR:-$root/cluster-data}"
port="${ANTS_CLUSTER_PORT:-8080}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$state/nats" "$state/frontend-1" "$state/frontend-2"
state="$(cd "$state" && pwd)"

relay_bin="${ANTS_RELAY_BIN:-}"
if [[ -z "$relay_bin" ]]; then
  scripts/setup.sh
  say "cargo build --release --features nats --bin ants-relay"
  cargo build --release --features nats --bin ants-relay
  relay_bin="$target_dir/release/ants-relay"
fi

pids=()
stop() {
  trap - INT TERM EXIT
  say "stopping"
  # Frontends first (they drain and answer what they owe), then the NATS servers.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
}
trap stop INT TERM EXIT

scripts/nats-cluster.sh "$state/nats" >"$state/nats/cluster.out" 2>&1 &
pids+=("$!")
nats_pid="$!"
until grep -q '^nats-cluster: ready: ' "$state/nats/cluster.out" 2>/dev/null; do
  kill -0 "$nats_pid" 2>/dev/null || fail "the NATS cluster did not start: $state/nats/cluster.out"
  sleep 0.2
done
url="$(sed -n 's/^nats-cluster: ready: //p' "$state/nats/cluster.out")"
say "NATS JetStream cluster ready: $url"

# One relay key for every frontend: the first run creates it, every frontend gets a copy.
key="$state/frontend-1/relay.key"
if [[ ! -f "$key" ]]; then
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$key" && echo >>"$key")
fi
install -m 600 "$key" "$state/frontend-2/relay.key"

store="$url${ANTS_STORE_OPTIONS:+?$ANTS_STORE_OPTIONS}"
for i in 1 2; do
  listen="127.0.0.1:$((port + i - 1))"
  "$relay_bin" --store "$store" --listen "$listen" --data "$state/frontend-$i" \
    --www "$root/www" --pkg "$root/pkg" >"$state/frontend-$i/relay.log" 2>&1 &
  pids+=("$!")
  until curl -fsS "http://$listen/healthz" >/dev/null 2>&1; do
    kill -0 "${pids[-1]}" 2>/dev/null || fail "frontend $i exited: $state/frontend-$i/relay.log"
    sleep 0.2
  done
  say "frontend $i: http://$listen/ (demo page), ws://$listen/ws (log: $state/frontend-$i/relay.log)"
done
echo
say "one logical relay, two doors: open http://127.0.0.1:$port/ and http://127.0.0.1:$((port + 1))/"
say "(same topic on both pages: the same log, receipts and checkpoints); Ctrl-C stops everything"
wait "${pids[@]}"
