#!/bin/sh
# fuzz/run.sh [SECONDS] - builds the libFuzzer drivers with clang and runs
# each for SECONDS (default: $FUZZ_SECONDS, else 60), with ASan + UBSan.
#
#   fuzz_scan_body  POST /v1/scan(/batch) bodies: server_parse_body (src/http/server.c)
#   fuzz_manifest   plugin.json: plugin_manifest_parse (src/host/plugin.c)
#   fuzz_findings   a plugin's answer: findings_collect (src/host/findings.c),
#                   differential against jansson
#   fuzz_channel    what an engine process writes to the host: the frame
#                   handling of src/isolate/parent.c and channel.c
#   fuzz_plugin_source  a plugin's index.js: engine_new (src/engine/), which
#                   must end in an engine or an error naming the file
#   fuzz_srcmap     a bundle's source map: srcmap_parse and the rewrite of
#                   error text (src/util/srcmap.c)
#
# The code under test is compiled here with coverage instrumentation; the
# rest of the library comes from $BUILD/libtxscan.a (built if missing) and
# is linked, not fuzzed. Seeds are fuzz/corpus/NAME (read-only here); new
# inputs go to $OUT/corpus-NAME, crashes to $OUT/crash-NAME-*. Exits non-zero
# when a driver finds a crash, a leak or a broken invariant.
#
# Env: BUILD (default build), FUZZ_OUT (default $BUILD/fuzz), FUZZ_CC
# (default clang), FUZZ_ONLY (one driver name).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OUT=${FUZZ_OUT:-$BUILD/fuzz}
SECS=${1:-${FUZZ_SECONDS:-60}}
CC=${FUZZ_CC:-clang}

if ! command -v "$CC" >/dev/null 2>&1; then
  echo "fuzz: $CC not found (./scripts/setup.sh installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi
mkdir -p "$OUT"

# libtxscan.a for the symbols the drivers link but do not fuzz.
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" --target txscan >/dev/null

CFLAGS="-std=c11 -g -O1 -Wall -Wextra -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  -I$ROOT/include -I$ROOT/src $(pkg-config --cflags jansson libmicrohttpd gnutls)"
LIBS="$BUILD/libtxscan.a $(pkg-config --libs javascriptcoregtk-4.1 jansson libmicrohttpd gnutls libseccomp) -lpthread -lm"

build() { # name sources...
  name=$1
  shift
  echo "fuzz: building $name"
  # shellcheck disable=SC2086 # word splitting of the flag lists is intended
  $CC $CFLAGS "$@" $LIBS -o "$OUT/$name"
}

run() { # name corpus-name [dict]
  name=$1
  seeds=$ROOT/fuzz/corpus/$2
  work=$OUT/corpus-$2
  dict=${3:-json.dict}
  mkdir -p "$work"
  echo "fuzz: running $name for ${SECS}s"
  # Leak checks cover our code; JavaScriptCore's own allocations (started
  # only by fuzz_plugin_source) are suppressed as in `make sanitize`.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$OUT/$name" -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -dict="$ROOT/fuzz/$dict" \
      -artifact_prefix="$OUT/crash-$2-" "$work" "$seeds"
}

only=${FUZZ_ONLY:-}
if [ -z "$only" ] || [ "$only" = fuzz_scan_body ]; then
  build fuzz_scan_body "$ROOT/fuzz/fuzz_scan_body.c" "$ROOT/src/http/server.c" "$ROOT/src/http/metrics.c" \
    "$ROOT/src/http/guard.c" "$ROOT/src/http/snapshot.c" "$ROOT/src/http/auth.c" \
    "$ROOT/src/http/tls.c" "$ROOT/src/util/jscan.c"
  run fuzz_scan_body scan_body
fi
if [ -z "$only" ] || [ "$only" = fuzz_manifest ]; then
  build fuzz_manifest "$ROOT/fuzz/fuzz_manifest.c" "$ROOT/src/host/plugin.c"
  run fuzz_manifest manifest
fi
if [ -z "$only" ] || [ "$only" = fuzz_findings ]; then
  build fuzz_findings "$ROOT/fuzz/fuzz_findings.c" "$ROOT/src/host/findings.c" "$ROOT/src/util/jscan.c"
  run fuzz_findings findings
fi
if [ -z "$only" ] || [ "$only" = fuzz_channel ]; then
  CFLAGS="$CFLAGS -DTXS_FUZZ -D_GNU_SOURCE"
  build fuzz_channel "$ROOT/fuzz/fuzz_channel.c" "$ROOT/src/isolate/parent.c" "$ROOT/src/isolate/channel.c" "$ROOT/src/util/jscan.c"
  run fuzz_channel channel
fi
if [ -z "$only" ] || [ "$only" = fuzz_plugin_source ]; then
  CFLAGS="$CFLAGS $(pkg-config --cflags javascriptcoregtk-4.1)"
  build fuzz_plugin_source "$ROOT/fuzz/fuzz_plugin_source.c" "$ROOT/src/engine/engine.c" \
    "$ROOT/src/engine/calls.c" "$ROOT/src/engine/sandbox.c" "$ROOT/src/engine/jsval.c" \
    "$ROOT/src/util/utf8.c"
  run fuzz_plugin_source plugin_source js.dict
fi
if [ -z "$only" ] || [ "$only" = fuzz_srcmap ]; then
  build fuzz_srcmap "$ROOT/fuzz/fuzz_srcmap.c" "$ROOT/src/util/srcmap.c"
  run fuzz_srcmap srcmap
fi
echo "fuzz: no crash in ${SECS}s per driver"
