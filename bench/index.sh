#!/usr/bin/env bash
# Large-index benchmark: time and peak memory of reading a ~50 MB index.yaml (the size of
# TrueCharts' index; Bitnami's full history is about 25 MB), in the same run:
#
#   chartcache   `repo fetch URL chart-000 -d DIR`: downloads index.yaml, parses it, resolves
#                the newest version and downloads that one archive (checked against its digest)
#   helm v4      `helm repo add` through helm-sdkpy (Helm as a Go library): downloads index.yaml
#                and loads it with Helm's own loader (sigs.k8s.io/yaml), then writes it to its
#                repository cache. Includes ~2.5 s of Python start and library load, printed
#                separately so it can be subtracted.
#   curl         downloading the same index.yaml to /dev/null: the floor no parser can beat
#
# The index is generated (bench/lib/classic_repo.py: many charts x 120 versions with the fields
# Bitnami's entries carry) and served by python's http.server on 127.0.0.1.
#
# Usage: bench/index.sh [MIB] [RUNS]   (default 50 MiB, 3 runs, median reported)
#        CHARTCACHE_BIN=/path/to/chartcache bench/index.sh   times another build.
# Needs: python3, curl, GNU time (/usr/bin/time); the helm-sdkpy venv of `bash .ci/install-peers`
#        for the Helm figure (skipped without it). Builds target/release if missing.
set -euo pipefail

mib=${1:-50}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-$root/target/release/chartcache}"
if [[ ! -x "$bin" ]]; then
  echo "building $bin" >&2
  (cd "$root" && cargo build --release --quiet)
fi
for tool in python3 curl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/index.sh: missing $tool (apt-get install time)" >&2; exit 1; }
done
venv="${CHARTCACHE_PEERS:-$HOME/.cache/chartcache-peers}/venv"

work=$(mktemp -d "${TMPDIR:-/tmp}/chartcache-bench-index.XXXXXX")
source "$root/bench/lib.sh"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
shape=$(python3 "$root/bench/lib/classic_repo.py" index "$work/repo" "$mib" "$url")
index_bytes=$(stat -c %s "$work/repo/index.yaml")
(cd "$work/repo" && exec python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)
for _ in $(seq 100); do curl -sf "$url/index.yaml" -o /dev/null && break; sleep 0.1; done

load() { cut -d' ' -f1-3 /proc/loadavg; }
# median_of NAME COMMAND...: runs COMMAND $runs times under GNU time; sets NAME_s and NAME_mib
# to the medians of wall time and peak RSS.
median_of() {
  local name=$1
  shift
  : >"$work/$name.times"
  for i in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o "$work/$name.t" "$@" >/dev/null 2>"$work/$name.err" || {
      echo "bench/index.sh: $name failed:" >&2
      cat "$work/$name.err" >&2
      exit 1
    }
    cat "$work/$name.t" >>"$work/$name.times"
  done
  read -r s k < <(python3 - "$work/$name.times" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(statistics.median(float(r[0]) for r in rows), int(statistics.median(int(r[1]) for r in rows)))
PY
  )
  printf -v "${name}_s" '%.2f' "$s"
  printf -v "${name}_mib" '%s' "$((k / 1024))"
  printf -v "${name}_load" '%s' "$(load)"
}

median_of curl curl -sf -o /dev/null "$url/index.yaml"
median_of cc "$bin" --home "$work/home" -q repo fetch "$url" chart-000 -d "$work/out"
[[ -s "$(echo "$work"/out/chart-000-*.tgz)" ]] || { echo "bench/index.sh: repo fetch wrote no archive" >&2; exit 1; }

helm_line="skipped (no helm-sdkpy venv at $venv: bash .ci/install-peers)"
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import helm_sdkpy' 2>/dev/null; then
  h="$work/helm"
  mkdir -p "$h"/{home,cache,config,data}
  cat >"$h/add.py" <<'PY'
import asyncio, os, sys
import helm_sdkpy as h
cfg = h.Configuration(kubeconfig="apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
if len(sys.argv) > 1:
    # A fresh repositories.yaml each run, so that every run really adds (downloads and loads).
    with open(os.environ["HELM_REPOSITORY_CONFIG"], "w") as f:
        f.write('apiVersion: ""\ngenerated: "0001-01-01T00:00:00Z"\nrepositories: []\n')
    asyncio.run(h.RepoAdd(cfg).run("big", sys.argv[1]))
PY
  helm_env=(env -i PATH="$PATH" HOME="$h/home" HELM_CACHE_HOME="$h/cache" HELM_CONFIG_HOME="$h/config"
    HELM_DATA_HOME="$h/data" HELM_REPOSITORY_CONFIG="$h/config/repositories.yaml"
    HELM_REPOSITORY_CACHE="$h/cache/repository")
  median_of helm_start "${helm_env[@]}" "$venv/bin/python" "$h/add.py"
  median_of helm "${helm_env[@]}" "$venv/bin/python" "$h/add.py" "$url"
  [[ -s "$h/cache/repository/big-index.yaml" ]] || { echo "bench/index.sh: helm repo add cached no index" >&2; exit 1; }
  ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
  helm_line="${helm_s} s   peak RSS ${helm_mib} MiB   (of which Python + library start ${helm_start_s} s, ${helm_start_mib} MiB)   load ${helm_load}
  ratios: chartcache / helm  time $(ratio "$cc_s" "$helm_s")x ($(ratio "$cc_s" "$(python3 -c "print(max(0.01, $helm_s - $helm_start_s))")")x without helm's start), peak RSS $(ratio "$cc_mib" "$helm_mib")x"
fi

cat <<EOF

chartcache large-index benchmark ($runs runs each, median; $(nproc) cores)
  index.yaml: $((index_bytes / 1024 / 1024)) MiB, $shape, served by python http.server on 127.0.0.1
  curl (download only)          ${curl_s} s   peak RSS ${curl_mib} MiB   load ${curl_load}
  chartcache repo fetch         ${cc_s} s   peak RSS ${cc_mib} MiB   load ${cc_load}
  helm v4 repo add              ${helm_line}
EOF
