#!/usr/bin/env bash
# Builds the npm package ants-coord into pkg/ from the Rust crate and pkg-config/: two builds of
# the crate, the full one (default features: documents) at the package root and the core one
# (`--no-default-features`: no Yrs) in pkg/core/, each with the same set of entries.
#
#   scripts/build-pkg.sh                    # two wasm-release builds + wasm-bindgen + wasm-opt
#   ANTS_WASM_OPT=0 scripts/build-pkg.sh    # without wasm-opt
#
# wasm-opt (npm's binaryen, after `npm ci`) runs -O2 with its inlining turned off, and its output
# is kept only when it is smaller gzipped. Inlining is what made -Oz 10-12 % *larger* gzipped:
# inlining functions that have one caller alone costs +48 KB gzip on the full build; without it
# -O2 saves about 2 % (BENCHMARKS.md, "Package size"). Without binaryen the build still works,
# a little larger.
#
# Needs: rustup target wasm32-unknown-unknown and the wasm-bindgen CLI at the version Cargo.lock
# pins (scripts/setup.sh installs both). wasm-opt comes from npm's `binaryen` (node_modules/.bin)
# and is optional: Debian's binaryen package is not used.
#
# Layout of pkg/ (see pkg-config/package.json "exports"):
#   ants_coord.js, ants_coord.d.ts, ants_coord_bg.wasm   wasm-bindgen --target web (browsers,
#                                                        bundlers: `await init()` first)
#   node.mjs      Node/Deno ESM: loads the .wasm synchronously, no init call needed
#   workerd.js    Cloudflare workerd: imports the .wasm as a compiled module
#   cjs/          wasm-bindgen --target nodejs (CommonJS), sharing ../ants_coord_bg.wasm
#   core/         the same files (ants_coord.*, node.mjs, workerd.js, cjs/) of the core build,
#                 and client-*.mjs binding the relay client to it (`ants-coord/core`,
#                 `ants-coord/core/client`)
#   *.br, *.gz    brotli and gzip copies of the .wasm and the JS, which the relay serves to a
#                 browser that accepts them; not packed into the npm package
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
profile=wasm-release
wasm="$target_dir/wasm32-unknown-unknown/$profile/ants_coord.wasm"
wasm_opt="$root/node_modules/.bin/wasm-opt"
out="$root/pkg"
stage="$(mktemp -d "${TMPDIR:-/tmp}/ants-coord-pkg.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

# One build: `bindgen NAME CARGO_FLAGS...` compiles the crate with those flags and leaves
# wasm-bindgen's web and nodejs output, checked and rewritten, in $stage/NAME/{web,cjs}.
bindgen() {
  local name="$1"
  shift
  local dir="$stage/$name" cjs_glue glue types assert_line throw_line raw_export
  echo "build-pkg: [$name] cargo build --profile $profile --target wasm32-unknown-unknown --lib $*"
  cargo build --quiet --profile "$profile" --target wasm32-unknown-unknown --lib "$@"

  echo "build-pkg: [$name] wasm-bindgen $(wasm-bindgen --version | cut -d' ' -f2) (web + nodejs)"
  wasm-bindgen --target web --remove-name-section --out-dir "$dir/web" "$wasm"
  wasm-bindgen --target nodejs --remove-name-section --out-dir "$dir/cjs" "$wasm"
  cmp -s "$dir/web/ants_coord_bg.wasm" "$dir/cjs/ants_coord_bg.wasm" || {
    echo "build-pkg: the web and nodejs .wasm differ; cannot share one file" >&2
    exit 1
}

if [[ "${ANTS_WASM_OPT:-1}" == 1 && -x "$wasm_opt" ]]; then
  echo "build-pkg: [$name] wasm-opt -O2, no inlining (npm binaryen $("$wasm_opt" --version | cut -d' ' -f3))"
  # -aimfs/-fimfs/-ocimfs 0: binaryen inlines nothing (always-inline, flexible-inline and
  # one-caller-inline size limits); see the header for why.
  "$wasm_opt" -O2 -aimfs 0 -fimfs 0 -ocimfs 0 \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$dir/web/ants_coord_bg.wasm" -o "$dir/opt.wasm"
  # Keep the optimized file only when it is smaller once compressed: that is what is shipped.
  if (($(gzip -9c "$dir/opt.wasm" | wc -c) < $(gzip -9c "$dir/web/ants_coord_bg.wasm" | wc -c))); then
    mv "$dir/opt.wasm" "$dir/web/ants_coord_bg.wasm"
  else
    echo "build-pkg: wasm-opt output is not smaller gzipped; keeping wasm-bindgen's"
  fi
elif [[ "${ANTS_WASM_OPT:-1}" == 1 ]]; then
  echo "build-pkg: wasm-opt not found (npm ci installs npm's binaryen); the .wasm is about 2 % larger"
else
  echo "build-pkg: wasm-opt not run (ANTS_WASM_OPT=0)"
fi

# The CommonJS glue loads the one shared .wasm from the package root.
local cjs_glue="$dir/cjs/ants_coord.js"
grep -q 'const wasmPath = `${__dirname}/ants_coord_bg.wasm`;' "$cjs_glue" || {
  echo "build-pkg: wasm-bindgen's nodejs glue changed; update the wasm path rewrite" >&2
  exit 1
}
sed -i 's|const wasmPath = `${__dirname}/ants_coord_bg.wasm`;|const wasmPath = require("path").join(__dirname, "..", "ants_coord_bg.wasm");|' "$cjs_glue"

# wasm-bindgen's glue reports misuse of an object as bare Errors: a call on a freed object ("null
# pointer passed to rust"), a call that needs the object while a call on it has not returned
# ("recursive use of an object detected ..."), and free() from inside such a call, say from one
# of the object's own callbacks ("attempted to take ownership of Rust value while it was
# borrowed"; the object is then freed when the outer call returns), and an argument that is not
# an instance of the class a parameter takes ("expected instance of Doc", from `_assertClass`,
# say `new DocSync(null)`). Give them the package's shape: an AntsCoordError with the stable code
# BAD_INPUT, as `signOp(freedIdentity, ...)` already throws. Other messages stay as they are. The
# rewrites are checked: a glue that changed shape fails the build.
for glue in "$dir/web/ants_coord.js" "$cjs_glue"; do
  assert_line='throw new Error(`expected instance of ${klass.name}`);'
  (($(grep -cF "$assert_line" "$glue") == 1)) || {
    echo "build-pkg: wasm-bindgen's _assertClass changed in $glue; update the wrong-class rewrite" >&2
    exit 1
  }
  sed -i "s|$assert_line|throw antsCoordGlueError(\`expected instance of \${klass.name}\`);|" "$glue"
  throw_line='throw new Error(getStringFromWasm0(arg0, arg1));'
  (($(grep -cF "$throw_line" "$glue") == 1)) || {
    echo "build-pkg: wasm-bindgen's throw import changed in $glue; update the misused-object rewrite" >&2
    exit 1
  }
  sed -i "s|$throw_line|throw antsCoordGlueError(getStringFromWasm0(arg0, arg1));|" "$glue"
  cat >>"$glue" <<'JS'

// Added by scripts/build-pkg.sh: wasm-bindgen's errors for a misused object or an argument of the
// wrong class, with a stable code.
function antsCoordGlueError(message) {
    const wrongClass = /^expected instance of (\w+)$/.exec(message);
    const text = wrongClass ? `expected an instance of ${wrongClass[1]}` : new Map([
        ['null pointer passed to rust', 'this object was freed: its free() was called'],
        ['recursive use of an object detected which would lead to unsafe aliasing in rust',
            'this object is in use by a call that has not returned (one of its own callbacks?)'],
        ['attempted to take ownership of Rust value while it was borrowed',
            'this object is in use by a call that has not returned: it is freed when that call returns'],
    ]).get(message);
    if (text === undefined) return new Error(message);
    const error = new Error(text);
    error.name = 'AntsCoordError';
    error.code = 'BAD_INPUT';
    return error;
}
JS
done

# wasm-bindgen types the raw exports of the .wasm (`InitOutput` in ants_coord.d.ts, and
# ants_coord_bg.wasm.d.ts) with `any` for every reference value they take or return. Nothing
# should call them, and the package's public types carry no `any` (tests/js/types.test.mjs):
# give them `unknown`. Only those lines (`readonly name: (` / `export const name: (`) change;
# the check after it fails the build when an `any` is left anywhere.
raw_export='^\(    readonly\|export const\) [A-Za-z0-9_$]*: ('
for types in "$dir/web/ants_coord.d.ts" "$dir/web/ants_coord_bg.wasm.d.ts" "$dir/cjs/ants_coord.d.ts"; do
  sed -i "/$raw_export/{s/\\([a-z]\\): any\\b/\\1: unknown/g;s/=> any;/=> unknown;/}" "$types"
  if grep -nE ': any\b|=> any\b' "$types" >&2; then
    echo "build-pkg: an \`any\` is left in $(basename "$types") (above); give it a type" >&2
    exit 1
  fi
done
}

bindgen full
bindgen core --no-default-features

# Assemble pkg/ in place: node_modules/ants-coord is a symlink to it, so keep the directory.
mkdir -p "$out"
find "$out" -mindepth 1 -delete
cp -R pkg-config/. "$out/"
# Each build's wasm-bindgen output; pkg-config/core/ holds only the core's client-*.mjs, which
# bind the relay client to the core build. The entries around the glue are the same files.
for build in full core; do
  dest="$out"
  [[ "$build" == core ]] && dest="$out/core"
  mkdir -p "$dest/cjs"
  cp "$stage/$build/web/ants_coord.js" "$stage/$build/web/ants_coord.d.ts" \
    "$stage/$build/web/ants_coord_bg.wasm" "$stage/$build/web/ants_coord_bg.wasm.d.ts" "$dest/"
  cp "$stage/$build/cjs/ants_coord.js" "$stage/$build/cjs/ants_coord.d.ts" "$dest/cjs/"
done
cp pkg-config/node.mjs pkg-config/workerd.js pkg-config/client.d.ts "$out/core/"
cp pkg-config/cjs/package.json "$out/core/cjs/"

# Brotli and gzip copies beside the files a browser loads, for the relay to serve precompressed
# (src/relay/assets.rs). They are not in the npm package ("files" in package.json lists names).
node scripts/compress-static.mjs "$out" "$out/core"

for file in ants_coord_bg.wasm core/ants_coord_bg.wasm; do
  echo "build-pkg: $file $(wc -c <"$out/$file") bytes, $(gzip -9c "$out/$file" | wc -c) bytes gzip -9"
done
echo "build-pkg: pkg/ ready"
