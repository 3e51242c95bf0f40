#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test tier of ants-coord; what CI runs (.ci/run).
# Runs all tiers even when one fails, prints a summary, and exits non-zero if any failed.
# Non-interactive: works with CI=true and no stdin.
#
# Tiers:
#   cargo test --all-features --no-fail-fast   native unit, property, vector and doc tests (every
#                                              test binary runs even when an earlier one fails)
#   the relay suites with ANTS_TEST_STORE=nats the same relay tests with every relay a frontend
#                                              on a 3-server NATS JetStream cluster
#   wasm-bindgen-test in Node                  tests/wasm.rs, the JS boundary
#   wasm-bindgen-test in headless Chromium     the same, through chromedriver
#   node --test tests/js/                      the built npm package: Node ESM + CJS (cross-checked
#                                              with node:crypto), headless Chromium, esbuild
#                                              bundles, Deno, workerd, npm pack + install,
#                                              a client failing over between two frontends of
#                                              a 3-server NATS cluster (nats-server, setup.sh),
#                                              and every js example of the two READMEs, run
#   node --test tests/e2e/                     the demo page in headless Chromium against a real
#                                              relay (two browser contexts, restart, lying relay),
#                                              and scripts/run.sh itself (serves, stops on Ctrl-C)
#   lints                                      cargo fmt --check, clippy -D warnings (native with
#                                              all features; wasm32 with and without defaults),
#                                              cargo doc -D warnings
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/setup.sh || {
  echo "test: setup failed" >&2
  exit 1
}

names=()
results=()
run() {
  local name="$1"
  shift
  printf '\n==== %s\n' "$name"
  local start=$SECONDS
  if "$@"; then
    results+=("PASS  $name ($((SECONDS - start)) s)")
  else
    results+=("FAIL  $name ($((SECONDS - start)) s)")
  fi
  names+=("$name")
}

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
wasm_env=(env CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner)

# Headless Chromium for wasm-bindgen-test: flags that let it run as root in a container, and a
# fresh profile each run.
profile="$(mktemp -d "${TMPDIR:-/tmp}/ants-coord-chromium.XXXXXX")"
webdriver_json="$profile.webdriver.json"
trap 'rm -rf "$profile" "$webdriver_json"' EXIT
cat >"$webdriver_json" <<JSON
{
  "goog:chromeOptions": {
    "binary": "$(command -v chromium)",
    "args": ["disable-gpu", "disable-quic", "no-first-run", "disable-background-networking",
             "disable-component-update", "disable-sync", "user-data-dir=$profile"]
  }
}
JSON

run "cargo test --all-features --no-fail-fast" cargo test --all-features --no-fail-fast
# The relay suites once more with every relay a frontend on a 3-server JetStream cluster (one
# cluster per test binary, a namespace per relay; tests/common/relay.rs `test_config`): both
# stores pass the same suite. Skipped here, with the reason: tests of the embedded store's own
# files (migrating an old SQLite data directory, a deleted WAL file) and of its Yjs room
# compaction (on a cluster a room is a topic of the log, PROTOCOL.md 8.10).
sqlite_only=(--skip a_data_directory_with_level_keyed_hashes_is_migrated_and_its_proofs_verify
  --skip a_lost_wal_stops_acknowledgements_and_fails_the_health_check
  --skip rooms_are_compacted_and_reload_the_same)
run "cargo test: the relay suites on the JetStream store (ANTS_TEST_STORE=nats)" \
  env ANTS_TEST_STORE=nats cargo test --all-features --no-fail-fast --test relay \
  --test relay_bad_input --test relay_http --test relay_access --test relay_revocation --test relay_topic_policy --test relay_yjs --test relay_yjs_access \
  --test relay_assets --test dishonest_relay --test session -- "${sqlite_only[@]}"
run "wasm-bindgen-test (node)" "${wasm_env[@]}" \
  cargo test --target wasm32-unknown-unknown --test wasm
run "wasm-bindgen-test (headless chromium)" "${wasm_env[@]}" WASM_BINDGEN_USE_BROWSER=1 \
  CHROMEDRIVER="$(command -v chromedriver)" WASM_BINDGEN_TEST_WEBDRIVER_JSON="$webdriver_json" \
  cargo test --target wasm32-unknown-unknown --test wasm
# The JS and e2e tiers run the relay that `cargo test` just built. Without this, tests/js/yjs and
# tests/e2e would `cargo build --features relay` it again: outside `cargo test` the dependencies'
# features differ (dev-dependencies are not unified), so the crate and part of its dependency tree
# would compile a second time.
export ANTS_RELAY_BIN="${ANTS_RELAY_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/ants-relay}"
run "node --test tests/js/ (package in node, chromium, bundler, deno, workerd, npm pack)" \
  timeout 1200 node --test --test-timeout=300000 tests/js/
run "node --test tests/e2e/ (demo page in chromium against a real relay; scripts/run.sh)" \
  timeout 1500 node --test --test-timeout=600000 tests/e2e/

# Lints, last so that none hides a test result: formatting; clippy on the native crate with every
# feature and target, and on the wasm32 library with and without its default features (the
# small identity/op core); rustdoc with warnings as errors (broken intra-doc links). rustfmt and
# clippy come from rustup like the wasm32 target; added here when missing.
lints() {
  local component status=0
  for component in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^$component-"; then
      rustup component add "$component" || return 1
    fi
  done
  cargo fmt --check || status=1
  cargo clippy --all-features --all-targets -- -D warnings || status=1
  cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings || status=1
  cargo clippy --target wasm32-unknown-unknown --lib --no-default-features -- -D warnings || status=1
  RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features || status=1
  return "$status"
}
run "lints (rustfmt, clippy native + wasm32, rustdoc -D warnings)" lints

printf '\n==== summary\n'
failed=0
for line in "${results[@]}"; do
  echo "$line"
  [[ "$line" == FAIL* ]] && failed=1
done
if ((failed)); then
  echo "test: FAILED"
  exit 1
fi
echo "test: all tiers passed"
