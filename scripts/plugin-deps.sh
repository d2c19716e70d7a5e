#!/bin/sh
# Installs the npm packages of plugins that have a package-lock.json
# (examples/plugins/* by default, or the folders given) into each plugin's
# own node_modules, which txscan bundles at load (docs/plugins.md). Runs
# `npm ci` only where node_modules is missing or older than the lock file.
#
#   scripts/plugin-deps.sh [PLUGIN_DIR...]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- "$root"/examples/plugins/*/
for d in "$@"; do
  d=${d%/}
  [ -f "$d/package-lock.json" ] || continue
  stamp=$d/node_modules/.package-lock.json
  if [ -f "$stamp" ] && [ ! "$d/package-lock.json" -nt "$stamp" ]; then continue; fi
  command -v npm >/dev/null 2>&1 || { echo "plugin-deps: npm is needed for $d (apt-get install npm)" >&2; exit 1; }
  echo "plugin-deps: npm ci in $d" >&2
  (cd "$d" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
done
