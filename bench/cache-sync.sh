#!/usr/bin/env bash
# Sync into the cache: `chartcache sync REGISTRY/REPO cache:` of many chart versions against
# `skopeo sync --src docker --dest dir` of the same tags, in the same run, from one local CNCF
# distribution registry.
#
#   cold  every version into an empty cache (skopeo: an empty directory)   goal <= 1.0x skopeo
#   warm  the same sync again: nothing to copy (skopeo copies again; it has no "up to date")
#
# CHARTCACHE_BIN=/path/to/chartcache times another build (before and after a change).
# Usage: bench/cache-sync.sh [RUNS] [VERSIONS]   (default 3 runs, 2000 versions; median)
# Needs: docker-registry, skopeo, curl, python3 (`bash .ci/install-peers`). Builds
#        target/release unless CHARTCACHE_BIN is set. The tools take turns going first.
set -euo pipefail

runs=${1:-3}
versions=${2:-2000}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-$root/target/release/chartcache}"
[[ -n "${CHARTCACHE_BIN:-}" ]] || (cd "$root" && cargo build --release --quiet)
for tool in docker-registry skopeo curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/cache-sync.sh: missing $tool: run 'bash .ci/install-peers'" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/chartcache-bench-cache-sync.XXXXXX")
source "$root/bench/lib.sh"
start_registry src; src=$started

export HOME="$work/home" HELM_REGISTRY_CONFIG="$work/creds.json"
mkdir -p "$HOME"
printf '{"default":[{"type":"insecureAcceptAnything"}]}' >"$work/policy.json"

# $versions versions of one small chart, saved and published with `chart push` (the setup does
# not depend on the sync being measured).
chart="$work/chart/app"
mkdir -p "$chart/templates"
cp -r "$root/testdata/charts/simple/templates/." "$chart/templates/"
cp "$root/testdata/charts/simple/values.yaml" "$chart/"
seed="$work/seed"
for i in $(seq 0 $((versions - 1))); do
  printf 'apiVersion: v2\nname: app\nversion: 1.%d.%d\ndescription: cache sync benchmark\n' $((i / 100)) $((i % 100)) >"$chart/Chart.yaml"
  "$bin" --home "$seed" -q chart save "$chart" "$src/bench/app:1.$((i / 100)).$((i % 100))"
done
seq 0 $((versions - 1)) | xargs -P 4 -I{} sh -c 'i={}; exec "$0" --home "$1" -q chart push "$2/bench/app:1.$((i / 100)).$((i % 100))"' "$bin" "$seed" "$src"
listed=$(curl -sf "http://$src/v2/bench/app/tags/list" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tags"]))')
[[ "$listed" == "$versions" ]] || { echo "bench/cache-sync.sh: the source holds $listed tags, expected $versions" >&2; exit 1; }

timed() { # FILE COMMAND...: appends the wall time of COMMAND (output discarded)
  local out=$1 t0 t1
  shift
  t0=$EPOCHREALTIME
  "$@" >/dev/null 2>"$work/last.err" || { echo "bench/cache-sync.sh: failed: $*" >&2; cat "$work/last.err" >&2; exit 1; }
  t1=$EPOCHREALTIME
  python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$t0" "$t1" >>"$out"
}
median() { python3 -c 'import statistics,sys; print("%.4f" % statistics.median(float(l) for l in open(sys.argv[1])))' "$1"; }
sk() { local run=$1; shift; env HOME="$work/sk-home$run" skopeo --policy "$work/policy.json" sync --src docker --dest dir --src-tls-verify=false "$@"; }

for f in cold_cc cold_sk warm_cc; do : >"$work/$f"; done
for i in $(seq "$runs"); do
  mkdir -p "$work/sk-home$i"
  cc=(timed "$work/cold_cc" "$bin" --home "$work/cc-home$i" -q sync "$src/bench/app" cache:)
  skc=(timed "$work/cold_sk" sk "$i" "$src/bench/app" "$work/sk-dir$i")
  if (( i % 2 )); then "${cc[@]}"; "${skc[@]}"; else "${skc[@]}"; "${cc[@]}"; fi
  timed "$work/warm_cc" "$bin" --home "$work/cc-home$i" -q sync "$src/bench/app" cache:
  [[ $i == "$runs" ]] || rm -rf "$work/cc-home$i" "$work/sk-dir$i"
done

# Both made the same thing: every version, with the registry's manifest digests.
cached=$("$bin" --home "$work/cc-home$runs" chart list -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[[ "$cached" == "$versions" ]] || { echo "bench/cache-sync.sh: the cache lists $cached charts, expected $versions" >&2; exit 1; }
dirs=$(find "$work/sk-dir$runs" -name manifest.json | wc -l)
[[ "$dirs" == "$versions" ]] || { echo "bench/cache-sync.sh: skopeo wrote $dirs manifests, expected $versions" >&2; exit 1; }
"$bin" --home "$work/cc-home$runs" -q chart verify

c_cc=$(median "$work/cold_cc"); c_sk=$(median "$work/cold_sk"); w_cc=$(median "$work/warm_cc")
cat <<EOF

chartcache cache-sync benchmark ($runs runs each, median; $versions chart versions; $(skopeo --version); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end)
  cold  chartcache sync REPO cache: ${c_cc} s   skopeo sync --dest dir ${c_sk} s   ratio $(ratio "$c_cc" "$c_sk")x  (goal <= 1.0x)
  warm  chartcache sync REPO cache: ${w_cc} s   (nothing to copy; skopeo has no up-to-date check)
EOF
