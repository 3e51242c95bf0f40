# Sourced by bench/cluster.sh and bench/cluster-fault.sh: builds the release binaries (feature
# nats), starts scripts/cluster.sh (three nats-server processes as one JetStream cluster, two
# relay frontends sharing one key) in a fresh state directory, stops and removes it on exit,
# and waits until the frontends answer. Takes $root, $port, $nats_port and, optionally,
# $store_options (ANTS_STORE_OPTIONS); sets $target_dir, $state, $cluster_pid, $nats_url and
# the frontends' WebSocket URLs $a and $b.

target_dir="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --features nats --bin ants-relay --bin ants-load
state="$(mktemp -d "${TMPDIR:-/tmp}/ants-bench-cluster.XXXXXX")"

ANTS_STORE_OPTIONS="${store_options:-}" \
  ANTS_RELAY_BIN="$target_dir/release/ants-relay" ANTS_CLUSTER_DIR="$state" \
  ANTS_CLUSTER_PORT="$port" NATS_PORT="$nats_port" \
  "$root/scripts/cluster.sh" >"$state/cluster.out" 2>&1 &
cluster_pid=$!
cleanup() {
  kill "$cluster_pid" 2>/dev/null || true
  wait "$cluster_pid" 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT INT TERM
until grep -q 'one logical relay' "$state/cluster.out" 2>/dev/null; do
  kill -0 "$cluster_pid" 2>/dev/null || { cat "$state/cluster.out" >&2; exit 1; }
  sleep 0.5
done
nats_url="$(sed -n 's/^cluster: NATS JetStream cluster ready: //p' "$state/cluster.out")"
a="ws://127.0.0.1:$port/ws"
b="ws://127.0.0.1:$((port + 1))/ws"
