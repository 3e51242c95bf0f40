#!/usr/bin/env bash
# Installs what building and testing ants-coord needs, then builds the npm package into pkg/.
# Idempotent: each step checks first and skips what is already done, so a second run is fast.
# Non-interactive (works with CI=true and no stdin). Needs rustup/cargo, Node >= 20 and npm;
# apt-get (as root, or with sudo) for Chromium and nats-server.
#
#   scripts/setup.sh        # everything
#
# Steps: rustup target wasm32-unknown-unknown; wasm-bindgen-cli at the exact version Cargo.lock
# pins (also provides wasm-bindgen-test-runner); Debian's chromium + chromium-driver; Debian's
# nats-server (the JetStream store's tests and scripts/nats-cluster.sh); npm ci when
# node_modules does not match package-lock.json; scripts/build-pkg.sh when pkg/ is out of date.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Toolchains that must already be there.
command -v cargo >/dev/null || fail "cargo not found: install Rust with rustup (https://rustup.rs)"
command -v rustup >/dev/null || fail "rustup not found: the wasm32 target is installed with rustup"
command -v node >/dev/null || fail "node not found: install Node.js >= 20"
command -v npm >/dev/null || fail "npm not found: install npm (comes with Node.js)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || fail "Node.js >= 20 needed, found $(node --version)"

# 1. The wasm32 target.
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rust target wasm32-unknown-unknown: present"
else
  say "rust target wasm32-unknown-unknown: installing"
  rustup target add wasm32-unknown-unknown
fi

# 2. wasm-bindgen-cli at the version Cargo.lock pins (CLI and library must match exactly).
wb_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[[ -n "$wb_version" ]] || fail "no wasm-bindgen entry in Cargo.lock"
if [[ "$(wasm-bindgen --version 2>/dev/null || true)" == "wasm-bindgen $wb_version" ]] &&
  command -v wasm-bindgen-test-runner >/dev/null; then
  say "wasm-bindgen-cli $wb_version: present"
else
  say "wasm-bindgen-cli $wb_version: installing with cargo (compiles from source, ~5 minutes)"
  cargo install wasm-bindgen-cli --version "$wb_version" --force
fi

# Debian packages through apt-get, as root or with sudo; the package lists are updated once.
apt_updated=""
apt_install() {
  local sudo=""
  if ((EUID != 0)); then
    command -v sudo >/dev/null || fail "apt-get needs root: run as root or install sudo"
    sudo="sudo -n"
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z "$apt_updated" ]]; then
    $sudo apt-get update -q
    apt_updated=1
  fi
  $sudo apt-get install -y -q --no-install-recommends "$@"
}

# 3. Chromium and chromedriver for the browser tiers (Debian packages).
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  say "chromium + chromedriver: present"
else
  say "chromium + chromedriver: installing with apt-get"
  apt_install chromium chromium-driver
fi

# 3b. nats-server for the JetStream store (feature `nats`): its tests start a 3-node cluster.
# Debian installs it in /usr/sbin, which a non-root PATH may lack.
if command -v nats-server >/dev/null || [[ -x /usr/sbin/nats-server ]]; then
  say "nats-server: present"
else
  say "nats-server: installing with apt-get"
  apt_install nats-server
fi

# 4. npm packages, from the lockfile, when node_modules does not match it. `ants-coord` is
# `file:./pkg`, a symlink, so installing before pkg/ is built is fine.
stamp="node_modules/.ants-coord-lock.sha256"
lock_hash="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_hash" ]]; then
  say "npm packages: up to date"
else
  say "npm packages: npm ci"
  npm ci --no-audit --no-fund --ignore-scripts
  echo "$lock_hash" >"$stamp"
fi

# 5. The npm package in pkg/, rebuilt when any input is newer than the shipped .wasm.
built="pkg/ants_coord_bg.wasm"
if [[ -f "$built" ]] && [[ -z "$(find src pkg-config Cargo.toml Cargo.lock scripts/build-pkg.sh \
  node_modules/.ants-coord-lock.sha256 -newer "$built" -print -quit)" ]]; then
  say "pkg/: up to date"
else
  say "pkg/: building"
  scripts/build-pkg.sh
fi
say "done"
