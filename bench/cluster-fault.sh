#!/usr/bin/env bash
# How long cluster mode stops answering when the NATS server leading the log stream dies
# (issue 23, BENCHMARKS.md "Cluster mode"): starts scripts/cluster.sh (three nats-server
# processes as one JetStream cluster, two relay frontends), runs `ants-load latency` over both
# frontends, SIGKILLs the stream leader's nats-server a third of the way in, and prints the
# load's line, whose "longest pause between receipts" is the stall, next to the same figure
# of a run without the kill (the peer, measured first on the same cluster).
#
#   bench/cluster-fault.sh                    # 30 s per run at 1,000 ops/s
#   SECONDS_PER_RUN=60 RATE=2000 bench/cluster-fault.sh
#
# The kill is timed from the load generator's start, which first signs every op and connects
# (a second or two): keep SECONDS_PER_RUN at 15 or more, or the kill may come before the
# measured run (a 6 s smoke run showed no pause at all).
#
# Builds the release binaries (feature nats) first. Needs nats-server, curl and python3.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf 'bench/cluster-fault: %s\n' "$*"; }
seconds="${SECONDS_PER_RUN:-30}"
rate="${RATE:-1000}"
port="${ANTS_CLUSTER_PORT:-18180}"
nats_port="${NATS_PORT:-14322}"
# shellcheck source=bench/cluster-up.sh
source "$root/bench/cluster-up.sh"
load=("$target_dir/release/ants-load" --url "$a" --url "$b" --seconds "$seconds"
  latency --rate "$rate" --subscribers 10 --publishers 10)

# The server leading the stream ANTS_LOG, from the servers' monitoring endpoints.
stream_leader() {
  for i in 0 1 2; do
    curl -fsS "http://127.0.0.1:$((nats_port + 4000 + i))/jsz?streams=true" 2>/dev/null || true
  done | python3 -c '
import json, sys
decoder, text, leaders = json.JSONDecoder(), sys.stdin.read(), set()
def walk(node):
    if isinstance(node, dict):
        if node.get("name") == "ANTS_LOG" and isinstance(node.get("cluster"), dict):
            leaders.add(node["cluster"].get("leader", ""))
        for value in node.values():
            walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)
at = 0
while at < len(text):
    while at < len(text) and text[at].isspace():
        at += 1
    if at >= len(text):
        break
    node, at = decoder.raw_decode(text, at)
    walk(node)
print(next((l for l in sorted(leaders) if l), ""))'
}

say "peer: the same load without a fault"
peer="$("${load[@]}" | tee /dev/stderr | grep '^latency:')"

leader="$(stream_leader)"
[[ -n "$leader" ]] || { say "no stream leader found"; exit 1; }
pid="$(pgrep -f -- "-c $state/nats/$leader.conf" | head -1)"
[[ -n "$pid" ]] || { say "no process for $leader"; exit 1; }
"${load[@]}" >"$state/fault.out" 2>&1 &
load_pid=$!
sleep $((seconds / 3))
say "SIGKILL $leader (pid $pid), the stream's leader, $((seconds / 3)) s into the run"
kill -9 "$pid"
wait "$load_pid" || true
cat "$state/fault.out" >&2
fault="$(grep '^latency:' "$state/fault.out" || true)"
pause() { grep -oE 'longest pause between receipts [0-9]+ ms' <<<"$1" | grep -oE '[0-9]+' || echo "?"; }
say "without a fault: longest pause between receipts $(pause "$peer") ms"
say "leader SIGKILLed: longest pause between receipts $(pause "$fault") ms"
for f in "$port" "$((port + 1))"; do
  say "frontend :$f /healthz: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$f/healthz")"
done
