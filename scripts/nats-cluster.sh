#!/usr/bin/env bash
# Starts a 3-node NATS JetStream cluster on loopback and stops it on Ctrl-C (or SIGTERM).
#
#   scripts/nats-cluster.sh DIR            # clients on 4222-4224
#   NATS_PORT=14222 scripts/nats-cluster.sh DIR
#
# DIR holds one config per server (n1.conf … n3.conf), their logs and their JetStream stores;
# it is kept, so a second run over the same DIR restarts the same cluster with its data.
# Ports: clients NATS_PORT..+2, routes NATS_PORT+2000..+2002, monitoring NATS_PORT+4000..+4002
# (4222 → 6222, 8222: the NATS defaults). The relay's `--store` takes the printed URL.
# Prints "ready: nats://…" once every server answers /healthz with 200. Needs nats-server
# (scripts/setup.sh installs it) and curl.
set -euo pipefail

say() { printf 'nats-cluster: %s\n' "$*"; }
fail() { printf 'nats-cluster: error: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 ]] || fail "usage: $0 DIR"
server="$(command -v nats-server || true)"
[[ -n "$server" ]] || { [[ -x /usr/sbin/nats-server ]] && server=/usr/sbin/nats-server; }
[[ -n "$server" ]] || fail "nats-server not found: run scripts/setup.sh"
command -v curl >/dev/null || fail "curl not found"

dir="$(mkdir -p "$1" && cd "$1" && pwd)"
base="${NATS_PORT:-4222}"
pids=()

stop() {
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

routes=""
for i in 0 1 2; do
  routes+="${routes:+, }nats-route://127.0.0.1:$((base + 2000 + i))"
done
for i in 0 1 2; do
  name="n$((i + 1))"
  cat >"$dir/$name.conf" <<CONF
server_name: $name
listen: 127.0.0.1:$((base + i))
http: 127.0.0.1:$((base + 4000 + i))
log_file: "$dir/$name.log"
jetstream {
  store_dir: "$dir/$name"
}
cluster {
  name: ants
  listen: 127.0.0.1:$((base + 2000 + i))
  routes: [$routes]
}
CONF
  "$server" -c "$dir/$name.conf" &
  pids+=("$!")
done

url="nats://127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
for i in 0 1 2; do
  until curl -fsS "http://127.0.0.1:$((base + 4000 + i))/healthz" >/dev/null 2>&1; do
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || fail "a server exited; see $dir/n*.log"
    done
    sleep 0.1
  done
done
say "ready: $url"
say "logs and stores in $dir; Ctrl-C stops the cluster"
wait "${pids[@]}"
