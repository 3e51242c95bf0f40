#!/usr/bin/env bash
# How long a cluster frontend takes to start on a log that already holds many entries
# (issue 23: "a persistent mirror with a fast start"), on one box (BENCHMARKS.md):
#
#   1. brings up the cluster (bench/cluster-up.sh: 3 nats-server processes, two frontends);
#   2. fills the log through both frontends (`ants-load throughput`, 64 topics);
#   3. starts a third frontend on an empty data directory and times it until /healthz answers
#      200 (the peer: it builds its read mirror from the stream's first message);
#   4. stops it (SIGTERM), appends more, starts it again on the same data directory (it resumes
#      its mirror) and times that; then once more after a SIGKILL;
#
# and prints each time and the ratio cold / resumed.
#
#   bench/cluster-start.sh                    # 60,000 ops per publisher-set, see below
#   OPS=200000 bench/cluster-start.sh         # a larger log
#
# Builds the release binaries (feature nats) first. Needs nats-server, curl.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf 'bench/cluster-start: %s\n' "$*"; }
port="${ANTS_CLUSTER_PORT:-18080}"
nats_port="${NATS_PORT:-14222}"
ops="${OPS:-60000}"
# shellcheck source=bench/cluster-up.sh
source "$root/bench/cluster-up.sh"
load="$target_dir/release/ants-load"
relay="$target_dir/release/ants-relay"

fill() {
  local per=$(( $1 / 64 ))
  "$load" --url "$a" --url "$b" --seconds 300 \
    throughput --publishers 64 --subscribers 0 --topics 64 --window 64 --ops-per-publisher "$per" |
    grep '^throughput:' >&2
}

third="$state/frontend-3"
mkdir -p "$third"
install -m 600 "$state/frontend-1/relay.key" "$third/relay.key"
listen="127.0.0.1:$((port + 2))"
third_pid=""
stop_third() {
  if [[ -n "$third_pid" ]]; then
    kill "-$1" "$third_pid" 2>/dev/null || true
    for _ in $(seq 300); do
      kill -0 "$third_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$third_pid" 2>/dev/null || true
    wait "$third_pid" 2>/dev/null || true
    third_pid=""
  fi
}
trap 'stop_third KILL; cleanup' EXIT INT TERM

# Starts the third frontend; sets $elapsed to the seconds until /healthz answers 200 (not in a
# subshell: $third_pid must stay set for stop_third and rss).
start_third() {
  local started ready
  started="$(date +%s.%N)"
  "$relay" --store "$nats_url" --listen "$listen" --data "$third" >>"$third/relay.log" 2>&1 &
  third_pid=$!
  until curl -fsS "http://$listen/healthz" >/dev/null 2>&1; do
    kill -0 "$third_pid" 2>/dev/null || { cat "$third/relay.log" >&2; exit 1; }
    sleep 0.05
  done
  ready="$(date +%s.%N)"
  elapsed="$(awk -v a="$started" -v b="$ready" 'BEGIN { printf "%.2f", b - a }')"
  # Where the time went, by the relay's own account (its last start's phases).
  grep 'frontend start phases' "$third/relay.log" | tail -1 | sed 's/^/  relay: /' >&2 || true
}

started_at() {
  curl -fsS "http://$listen/metrics" | sed -n 's/^ants_relay_mirror_started_at_seq //p'
}

# The third frontend's resident memory, MiB.
rss() {
  awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$third_pid/status"
}

say "filling the log with $ops ops over 64 topics"
fill "$ops"
entries="$(curl -fsS "http://127.0.0.1:$port/metrics" | sed -n 's/^ants_relay_mirror_applied_seq //p')"
say "the stream holds $entries messages"

start_third
cold="$elapsed"
say "cold start (mirror built from the stream): ${cold} s, read from stream seq $(started_at), RSS $(rss) MiB"
stop_third TERM
fill $((ops / 10))
start_third
warm="$elapsed"
say "restart after SIGTERM and $((ops / 10)) more ops (mirror resumed): ${warm} s, read from stream seq $(started_at), RSS $(rss) MiB"
stop_third KILL
fill $((ops / 10))
start_third
killed="$elapsed"
say "restart after SIGKILL and $((ops / 10)) more ops (mirror resumed): ${killed} s, read from stream seq $(started_at), RSS $(rss) MiB"
stop_third TERM
say "ratio cold / resumed = $(awk -v c="$cold" -v w="$warm" -v k="$killed" 'BEGIN { printf "%.1fx (SIGTERM), %.1fx (SIGKILL)", c / w, c / k }')"
