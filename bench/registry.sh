#!/usr/bin/env bash
# Registry benchmark: chartcache push/pull against `skopeo copy` of the same artifact, in the
# same run, against a local CNCF distribution registry; and the peak memory of pushing and
# pulling a ~100 MB chart (it must be streamed, not held: goal <= 64 MB resident).
#
# CHARTCACHE_BIN=/path/to/chartcache times another build (before and after a change).
# Usage: bench/registry.sh [RUNS]        (from the repository root; needs docker-registry,
#                                         skopeo and GNU time: `bash .ci/install-peers`)
# The peer copies the very artifact chartcache pushes: skopeo reads the cache itself as an
# OCI image layout (`oci:CACHE:REF`), so both tools move identical bytes.
set -euo pipefail

runs=${1:-7}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-$root/target/release/chartcache}"
[ -x "$bin" ] || (cd "$root" && cargo build --release --quiet)
for tool in docker-registry skopeo /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run 'bash .ci/install-peers' (and apt-get install time)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/chartcache-bench-registry.XXXXXX")
source "$root/bench/lib.sh"

start_registry registry
host=$started

export HELM_REGISTRY_CONFIG="$work/creds.json"
skopeo_flags=(--insecure-policy --src-tls-verify=false --dest-tls-verify=false)

# A small realistic chart (one of the real charts when the shared data is there).
small="$root/../shared/testdata/real-charts/stable/wordpress"
if [ ! -d "$small" ]; then small="$root/testdata/charts/simple"; fi
home="$work/home"
"$bin" --home "$home" chart save "$small" "$host/bench/src:1.0.0" >/dev/null 2>&1
cache="$home/registry"

now() { echo "$EPOCHREALTIME"; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.4f", m}'; }

# Push: each run goes to a fresh repository, so every blob is really uploaded.
: >"$work/push_cc"; : >"$work/push_sk"
for i in $(seq "$runs"); do
  "$bin" --home "$home" chart tag "$host/bench/src:1.0.0" "$host/cc$i/wordpress:1.0.0" >/dev/null
  t0=$(now); "$bin" --home "$home" -q chart push "$host/cc$i/wordpress:1.0.0"; t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/push_cc"
  t0=$(now); skopeo copy -q "${skopeo_flags[@]}" "oci:$cache:$host/bench/src:1.0.0" "docker://$host/sk$i/wordpress:1.0.0"; t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/push_sk"
done

# Pull: each run into an empty cache / empty layout.
: >"$work/pull_cc"; : >"$work/pull_sk"
for i in $(seq "$runs"); do
  t0=$(now); "$bin" --home "$work/pull$i" -q chart pull "$host/cc1/wordpress:1.0.0"; t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/pull_cc"
  t0=$(now); skopeo copy -q "${skopeo_flags[@]}" "docker://$host/cc1/wordpress:1.0.0" "oci:$work/layout$i:x"; t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/pull_sk"
done

# Peak memory with a ~100 MB chart of incompressible files (each under Helm's 5 MiB cap).
big="$work/big"
mkdir -p "$big/files"
printf 'apiVersion: v2\nname: big\nversion: 1.0.0\n' >"$big/Chart.yaml"
python3 - "$big/files" <<'PY'
import os, sys, random
r = random.Random(42)
for i in range(20):
    with open(os.path.join(sys.argv[1], f"blob{i:02}.bin"), "wb") as f:
        f.write(r.randbytes(4_900_000))
PY
"$bin" --home "$home" -q chart save "$big" "$host/bench/big:1.0.0"
big_size=$(stat -L -c %s "$cache/refs/${host/:/_}/bench/big/tags/1.0.0/content")
rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n1; }
push_rss=$(rss "$bin" --home "$home" -q chart push "$host/bench/big:1.0.0")
pull_rss=$(rss "$bin" --home "$work/bigpull" -q chart pull "$host/bench/big:1.0.0")
skopeo_pull_rss=$(rss skopeo copy -q "${skopeo_flags[@]}" "docker://$host/bench/big:1.0.0" "oci:$work/biglayout:x")

pcc=$(median <"$work/push_cc"); psk=$(median <"$work/push_sk")
lcc=$(median <"$work/pull_cc"); lsk=$(median <"$work/pull_sk")
cat <<EOF

chartcache registry benchmark ($runs runs each, median; registry: distribution on $host)
  push  chartcache $pcc s   skopeo copy $psk s   ratio $(echo "$pcc / $psk" | bc -l | xargs printf %.2f)x  (goal <= 1.00x)
  pull  chartcache $lcc s   skopeo copy $lsk s   ratio $(echo "$lcc / $lsk" | bc -l | xargs printf %.2f)x  (goal <= 1.00x)
  peak RSS with a $(echo "$big_size / 1048576" | bc) MiB chart: push $((push_rss / 1024)) MiB, pull $((pull_rss / 1024)) MiB (goal <= 64 MiB; skopeo pull: $((skopeo_pull_rss / 1024)) MiB)
EOF
