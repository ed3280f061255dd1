#!/usr/bin/env bash
# `chart images` benchmark: listing the images of the 18 shared real charts (helm/charts'
# stable/ and incubator/, from a 3.8 MB prometheus-operator down to small ones), one
# `chartcache chart images X.tgz` per chart, against what the least work on the same archives
# costs: `tar -xzf` of each into a directory, in the same run.                 goal <= 1.0x
#
# Both sides start from the same .tgz files (made here with `tar -czf` from the chart
# directories) and run one process per chart, as a script looping over charts would.
# chartcache reads each archive (every entry checked, values and templates parsed, templates
# rendered as far as they can be); tar only unpacks it. The images found are checked (each
# chart lists at least one), so a broken build cannot look fast.
#
# CHARTCACHE_BIN=/path/to/chartcache times another build (before and after a change);
# REAL_CHARTS=DIR takes the charts from elsewhere (default: shared/testdata/real-charts beside
# the repository or its directory of worktrees).
# Usage: bench/images.sh [RUNS]     (from anywhere; default 9 runs each, median reported)
# Needs: bash, python3, tar, gzip. Uses hyperfine when installed (NO_HYPERFINE=1 to not).
# Builds target/release if missing. Scratch: bench/work/images/ (gitignored), removed at the end
# unless KEEP=1.
set -euo pipefail

runs=${1:-9}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-$root/target/release/chartcache}"
if [[ ! -x "$bin" ]]; then
  echo "building $bin" >&2
  (cd "$root" && cargo build --release --quiet)
fi
for tool in python3 tar gzip; do
  command -v "$tool" >/dev/null || { echo "bench/images.sh: missing $tool" >&2; exit 1; }
done
# The shared data sits beside the repository, or beside its directory of worktrees.
charts_dir="${REAL_CHARTS:-}"
if [[ -z "$charts_dir" ]]; then
  for up in "$root/.." "$root/../.." "$root/../../.."; do
    if [[ -d "$up/shared/testdata/real-charts" ]]; then
      charts_dir=$(cd "$up/shared/testdata/real-charts" && pwd)
      break
    fi
  done
fi
[[ -n "$charts_dir" && -d "$charts_dir" ]] || { echo "bench/images.sh: no shared/testdata/real-charts found (set REAL_CHARTS=DIR)" >&2; exit 1; }

work="$root/bench/work/images"
rm -rf "$work"
mkdir -p "$work/tgz" "$work/home" "$work/out"
source "$root/bench/lib.sh"

use_hyperfine() { [[ "${NO_HYPERFINE:-0}" != 1 ]] && command -v hyperfine >/dev/null; }
if use_hyperfine; then timer="hyperfine $(hyperfine --version | cut -d' ' -f2)"; else timer="bash/python loop"; fi

# median_time NAME PREPARE COMMAND: the median wall time in seconds of COMMAND (run by bash)
# over $runs runs after one warm-up, running PREPARE (untimed; may be "") before each.
median_time() {
  local name=$1 prepare=$2 command=$3
  if use_hyperfine; then
    local prep=()
    [[ -n "$prepare" ]] && prep=(--prepare "$prepare")
    hyperfine --style none --warmup 1 --runs "$runs" "${prep[@]}" \
      --export-json "$work/$name.json" "$command" >/dev/null
    python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$work/$name.json"
  else
    python3 - "$runs" "$prepare" "$command" <<'PY'
import statistics, subprocess, sys, time
runs, prepare, command = int(sys.argv[1]), sys.argv[2], sys.argv[3]
times = []
for i in range(runs + 1):  # the first run warms the page cache and is not counted
    if prepare:
        subprocess.run(["bash", "-c", prepare], check=True)
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", command], check=True)
    if i:
        times.append(time.perf_counter() - t0)
print("%.4f" % statistics.median(times))
PY
  fi
}

# --- the archives -------------------------------------------------------------------------------
count=0
for dir in "$charts_dir"/*/*/; do
  [[ -f "$dir/Chart.yaml" ]] || continue
  name=$(basename "$dir")
  tar -czf "$work/tgz/$name.tgz" -C "$(dirname "$dir")" "$name"
  count=$((count + 1))
done
bytes=$(cat "$work/tgz"/*.tgz | wc -c)
echo "charts: $count archives, $((bytes / 1024)) KiB compressed, from $charts_dir"

# --- check what chartcache finds ------------------------------------------------------------
total=0
for f in "$work/tgz"/*.tgz; do
  n=$(HOME="$work/home" "$bin" --home "$work/home" -q chart images "$f" 2>/dev/null | wc -l)
  if [[ "$n" -lt 1 ]]; then
    echo "bench/images.sh: chartcache found no image in $(basename "$f")" >&2
    exit 1
  fi
  total=$((total + n))
done
echo "chartcache lists $total images in all"

# --- time both, in the same run -----------------------------------------------------------------
images_cmd="for f in '$work'/tgz/*.tgz; do HOME='$work/home' '$bin' --home '$work/home' chart images \"\$f\" >/dev/null 2>&1; done"
tar_prepare="rm -rf '$work/out' && mkdir -p '$work/out'"
tar_cmd="for f in '$work'/tgz/*.tgz; do tar -xzf \"\$f\" -C '$work/out'; done"

t_images=$(median_time images "" "$images_cmd")
t_tar=$(median_time tar "$tar_prepare" "$tar_cmd")

echo "timer: $timer, median of $runs runs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %8s s\n' "chartcache chart images (x$count)" "$t_images"
printf '%-44s %8s s\n' "tar -xzf (x$count)" "$t_tar"
echo "ratio chart images / tar -xzf: $(ratio "$t_images" "$t_tar")x (goal <= 1.0x)"
