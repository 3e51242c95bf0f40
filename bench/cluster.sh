#!/usr/bin/env bash
# Cluster mode against its peer, in one run on one box (issue 23 §5, BENCHMARKS.md):
# starts scripts/cluster.sh (3 nats-server processes as one JetStream cluster, two relay
# frontends sharing one key), then measures on that same NATS cluster
#
#   1. raw JetStream (the peer): one 200-byte message per op, each publish waiting for its ack,
#      64 subjects, 16 publishers (bench/jetstream-raw.mjs, stream RAW, replicas 3);
#   2. the relay in cluster mode: `ants-load throughput` over both frontends, 64 topics;
#   3. contention: `ants-load throughput --cross`, 32 topics each written through both
#      frontends (with forwarding, the default, each topic's publishes go to its owner;
#      FORWARD=off makes both frontends sequence every topic, fenced by the stream);
#   4. latency: `ants-load latency` at 5,000 ops/s with 100 subscribers over both frontends;
#
# and prints the ratio relay / raw. Everything is stopped at the end (also on failure).
#
#   bench/cluster.sh                 # 10 s per phase
#   SECONDS_PER_PHASE=20 bench/cluster.sh
#   FORWARD=off bench/cluster.sh     # frontends without forwarding to topic owners
#
# Builds the release binaries (feature nats) first. Needs nats-server, curl, node + npm ci.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf 'bench/cluster: %s\n' "$*"; }
seconds="${SECONDS_PER_PHASE:-10}"
port="${ANTS_CLUSTER_PORT:-18080}"
nats_port="${NATS_PORT:-14222}"
store_options="forward=${FORWARD:-on}"
# shellcheck source=bench/cluster-up.sh
source "$root/bench/cluster-up.sh"
say "cluster up: $nats_url, frontends $a $b; $seconds s per phase"

raw_line="$(node bench/jetstream-raw.mjs --url "$nats_url" --publishers 16 --seconds "$seconds" | tee /dev/stderr | tail -1)"
raw="$(grep -oE '[0-9]+ msgs/s' <<<"$raw_line" | head -1 | grep -oE '^[0-9]+')"

load="$target_dir/release/ants-load"
relay_line="$("$load" --url "$a" --url "$b" --seconds "$seconds" \
  throughput --publishers 64 --subscribers 0 --topics 64 --window 64 --ops-per-publisher 20000 |
  tee /dev/stderr | grep '^throughput:')"
relay="$(grep -oE '= [0-9]+ ops/s' <<<"$relay_line" | grep -oE '[0-9]+')"
# How often the two frontends raced on a topic (each conflict: a batch decided again), and
# how many publishes went to their topic's owner. Counters add up over the phases.
counters() {
  for f in "$port" "$((port + 1))"; do
    say "frontend :$f after $1: $(curl -fsS "http://127.0.0.1:$f/metrics" |
      grep -E '^ants_relay_(append_conflicts|ops_accepted|forwarded|forwards_served|forward_fallbacks)_total ' |
      sed 's/^ants_relay_//; s/_total / /' | tr '\n' ' ')"
  done
}
counters throughput
if [[ -n "$raw" && -n "$relay" ]]; then
  say "ratio relay (cluster mode) / raw JetStream = $(awk -v r="$relay" -v p="$raw" 'BEGIN { printf "%.2f", r / p }')x ($relay vs $raw per second)"
fi

cross_line="$("$load" --url "$a" --url "$b" --seconds "$seconds" \
  throughput --cross --publishers 64 --subscribers 0 --topics 32 --window 64 --ops-per-publisher 20000 |
  tee /dev/stderr | grep '^throughput:')"
say "contended (forward=${FORWARD:-on}): $(grep -oE '= [0-9]+ ops/s' <<<"$cross_line")"
counters contended

"$load" --url "$a" --url "$b" --seconds "$seconds" latency --rate 5000 --subscribers 100 --publishers 10
