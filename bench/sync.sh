#!/usr/bin/env bash
# Sync benchmark: `chartcache sync` against `skopeo sync --src docker --dest docker` of the same
# repository, in the same run, between two local CNCF distribution registries.
#
#   cold  100 chart tags into an empty destination (every manifest and blob copied)
#                                                                     goal <= 0.30x skopeo
#   warm  the same sync again: nothing to copy                        goal <= 0.20x skopeo
#   fixed a warm sync of one tag: what any command talking to two registries costs, in CPU
#         time (user + system): goal < 5 ms
#
# Wall times are the goals; CPU times are reported beside them (they do not depend on how
# loaded the machine is, and show what chartcache itself spends while it waits for registries).
#
# CHARTCACHE_BIN=/path/to/chartcache times another build (before and after a change).
# Usage: bench/sync.sh [RUNS] [TAGS]   (default 5 runs, 100 tags; median reported)
# Needs: docker-registry, skopeo, curl, python3 (`bash .ci/install-peers`). Builds
#        target/release (cargo is a no-op when it is current, and a stale binary would measure
#        old code). Each run gives each tool its own new, empty destination registry and
#        skopeo a new HOME: into a registry that already holds the blobs (an earlier run's
#        prefix), skopeo's blob-info cache lets it mount them instead of copying, so "cold"
#        would not be cold for it. The tools take turns going first.
set -euo pipefail

runs=${1:-5}
tags=${2:-100}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-$root/target/release/chartcache}"
[[ -n "${CHARTCACHE_BIN:-}" ]] || (cd "$root" && cargo build --release --quiet)
for tool in docker-registry skopeo curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/sync.sh: missing $tool: run 'bash .ci/install-peers'" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/chartcache-bench-sync.XXXXXX")
source "$root/bench/lib.sh"
stop_registry() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
start_registry src; src=$started

export HOME="$work/home" HELM_REGISTRY_CONFIG="$work/creds.json"
mkdir -p "$HOME"
printf '{"default":[{"type":"insecureAcceptAnything"}]}' >"$work/policy.json"
skopeo_sync=(skopeo --policy "$work/policy.json" sync --src docker --dest docker
  --src-tls-verify=false --dest-tls-verify=false)

# $tags versions of one small chart (each its own chart layer and config), published with
# `chart push` (not sync, so the setup does not depend on the code being measured).
chart="$work/chart/app"
mkdir -p "$chart/templates"
cp -r "$root/testdata/charts/simple/templates/." "$chart/templates/"
cp "$root/testdata/charts/simple/values.yaml" "$chart/"
seed="$work/seed"
for i in $(seq 0 $((tags - 1))); do
  printf 'apiVersion: v2\nname: app\nversion: 1.0.%d\ndescription: sync benchmark chart\n' "$i" >"$chart/Chart.yaml"
  "$bin" --home "$seed" -q chart save "$chart" "$src/bench/app:1.0.$i"
done
seq 0 $((tags - 1)) | xargs -P 4 -I{} "$bin" --home "$seed" -q chart push "$src/bench/app:1.0.{}"
listed=$(curl -sf "http://$src/v2/bench/app/tags/list" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tags"]))')
[[ "$listed" == "$tags" ]] || { echo "bench/sync.sh: the source holds $listed tags, expected $tags" >&2; exit 1; }

for f in cold_cc cold_sk warm_cc warm_sk fixed_cc; do : >"$work/$f"; done
dst_cc="" dst_sk="" pid_cc="" pid_sk=""
for i in $(seq "$runs"); do
  [[ -n "$pid_cc" ]] && stop_registry "$pid_cc" && stop_registry "$pid_sk"
  start_registry "dst-cc$i"; dst_cc=$started; pid_cc=$started_pid
  start_registry "dst-sk$i"; dst_sk=$started; pid_sk=$started_pid
  mkdir -p "$work/sk-home$i"
  cc=(timed_cpu "$work/cold_cc" "$bin" --home "$work/cc-home" -q sync "$src/bench/app" "$dst_cc/mirror")
  sk=(timed_cpu "$work/cold_sk" env HOME="$work/sk-home$i" "${skopeo_sync[@]}" "$src/bench/app" "$dst_sk/mirror")
  if (( i % 2 )); then "${cc[@]}"; "${sk[@]}"; else "${sk[@]}"; "${cc[@]}"; fi
  cc=(timed_cpu "$work/warm_cc" "$bin" --home "$work/cc-home" -q sync "$src/bench/app" "$dst_cc/mirror")
  sk=(timed_cpu "$work/warm_sk" env HOME="$work/sk-home$i" "${skopeo_sync[@]}" "$src/bench/app" "$dst_sk/mirror")
  if (( i % 2 )); then "${cc[@]}"; "${sk[@]}"; else "${sk[@]}"; "${cc[@]}"; fi
  timed_cpu "$work/fixed_cc" "$bin" --home "$work/cc-home" -q sync "$src/bench/app:1.0.0" "$dst_cc/mirror"
done

# Both tools must have made the same thing: every tag, with the source's digests.
python3 - "$src" "$dst_cc" "$dst_sk" "$tags" <<'PY'
import json, sys, urllib.request
src, dst_cc, dst_sk, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
def digests(host, repo):
    tags = json.load(urllib.request.urlopen(f"http://{host}/v2/{repo}/tags/list"))["tags"]
    out = {}
    for t in tags:
        req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{t}", headers=accept, method="HEAD")
        out[t] = urllib.request.urlopen(req).headers["Docker-Content-Digest"]
    return out
want = digests(src, "bench/app")
assert len(want) == n, len(want)
for dst in (dst_cc, dst_sk):
    got = digests(dst, "mirror/app")
    assert got == want, f"{dst}/mirror/app differs from the source"
PY

c_cc=$(median_col "$work/cold_cc"); c_sk=$(median_col "$work/cold_sk")
w_cc=$(median_col "$work/warm_cc"); w_sk=$(median_col "$work/warm_sk")
cpu() { ms "$(median_col "$work/$1" 2)"; }
cat <<EOF

chartcache sync benchmark ($runs runs each, median; $tags chart tags; $(skopeo --version); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end)
  cold  chartcache sync ${c_cc} s   skopeo sync ${c_sk} s   ratio $(ratio "$c_cc" "$c_sk")x  (goal <= 0.30x)
  warm  chartcache sync ${w_cc} s   skopeo sync ${w_sk} s   ratio $(ratio "$w_cc" "$w_sk")x  (goal <= 0.20x)
  CPU   cold chartcache $(cpu cold_cc) ms, skopeo $(cpu cold_sk) ms; warm chartcache $(cpu warm_cc) ms, skopeo $(cpu warm_sk) ms
  fixed warm sync of one tag: $(ms "$(median_col "$work/fixed_cc")") ms wall, $(cpu fixed_cc) ms CPU  (goal < 5 ms CPU)
EOF
