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
# Needs: bash, python3, tar, gzip. Builds target/release if missing. The two are timed
# interleaved (a shared machine's load falls on both alike); CPU time is shown beside the wall
# time, as the figure that load does not move. Scratch: bench/work/images/ (gitignored), removed at the end
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

# --- time both, in the same run ---------------------------------------------------------------
# Interleaved (one chartcache pass, one tar pass, alternating which goes first), so both see
# the same machine load; wall time and CPU time (user + system of the processes) per pass.
python3 - "$runs" "$bin" "$work" <<'PY'
import glob, os, resource, shutil, statistics, subprocess, sys, time

runs, binary, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
archives = sorted(glob.glob(os.path.join(work, "tgz", "*.tgz")))
env = dict(os.environ, HOME=os.path.join(work, "home"))
out = os.path.join(work, "out")

def images():
    for f in archives:
        subprocess.run([binary, "--home", env["HOME"], "chart", "images", f], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

def untar():
    for f in archives:
        subprocess.run(["tar", "-xzf", f, "-C", out], check=True)

def timed(fn):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu

results = {"images": [], "tar": []}
for i in range(runs + 1):  # the first round warms the page cache and is not counted
    order = ["images", "tar"] if i % 2 == 0 else ["tar", "images"]
    for name in order:
        if name == "tar":
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
        r = timed(images if name == "images" else untar)
        if i:
            results[name].append(r)

def med(name, k):
    return statistics.median(r[k] for r in results[name])

n = len(archives)
print("median of %d interleaved runs, load average: %s" % (runs, " ".join(open("/proc/loadavg").read().split()[:3])))
print("%-36s %8s %8s" % ("", "wall s", "cpu s"))
print("%-36s %8.4f %8.4f" % ("chartcache chart images (x%d)" % n, med("images", 0), med("images", 1)))
print("%-36s %8.4f %8.4f" % ("tar -xzf (x%d)" % n, med("tar", 0), med("tar", 1)))
print("ratio chart images / tar -xzf: %.2fx wall (goal <= 1.0x), %.2fx cpu"
      % (med("images", 0) / med("tar", 0), med("images", 1) / med("tar", 1)))
PY
