#!/usr/bin/env bash
# Migration benchmark: `chartcache repo migrate` of a classic repository of 500 chart versions
# into a local CNCF distribution registry, against the way people do it without a bulk tool,
# in the same run, on the same files.
#
#   1. `repo migrate --jobs 1`                      every version into a fresh prefix
#   2. `repo migrate` (default --jobs 4)            into another fresh prefix
#   3. the same command again: nothing to do        (every version is skipped)
#   4. the peer: Helm v4, one version after the other, as a team moving a repository by hand
#      does today (`helm pull --repo URL NAME --version V` then `helm push NAME-V.tgz
#      oci://HOST/PREFIX`): a Python loop, handed the list of versions, that downloads each
#      archive, checks its sha256 against the index digest (as chartcache does), and pushes it
#      with Helm v4's own `Push` action (PyPI helm-sdkpy: Helm as a Go library, loaded once).
#      This flatters the peer: no process start per chart, and no index.yaml download per
#      chart (`helm pull --repo` fetches the index every time). `skopeo copy` is no peer here:
#      it cannot read an index.yaml or a .tgz.
#   Each run gets a fresh cache (--home) and its own destination prefix, so nothing is skipped
#   or mounted from an earlier run. The ratios compare 1 and 2 with 4.
#
# Usage: bench/migrate.sh [CHARTS] [VERSIONS]   (default 50 charts x 10 versions = 500)
#        CHARTCACHE_BIN=/path/to/chartcache bench/migrate.sh   times another build (before/after);
#        NO_PEER=1 skips the Helm loop.
# Needs: python3, curl, /usr/bin/docker-registry, GNU time (/usr/bin/time; apt-get install
#        time), and for the peer the helm-sdkpy venv of `bash .ci/install-peers`
#        ($CHARTCACHE_PEERS/venv, default ~/.cache/chartcache-peers/venv; without it the peer
#        is skipped). Builds target/release if missing. Scratch: a temp dir, removed at the end.
# The load average is printed with the figures: on a shared machine compare the ratios.
set -euo pipefail

charts=${1:-50}
versions=${2:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-$root/target/release/chartcache}"
if [[ ! -x "$bin" ]]; then
  echo "building $bin" >&2
  (cd "$root" && cargo build --release --quiet)
fi
for tool in python3 curl docker-registry /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/migrate.sh: missing $tool (bash .ci/install-peers; apt-get install time)" >&2; exit 1; }
done
venv="${CHARTCACHE_PEERS:-$HOME/.cache/chartcache-peers}/venv"

work=$(mktemp -d "${TMPDIR:-/tmp}/chartcache-bench-migrate.XXXXXX")
source "$root/bench/lib.sh"

# The repository: real archives and their index, served by python's http.server (threaded).
web_port=$(free_port)
repo_url="http://127.0.0.1:$web_port"
python3 "$root/bench/lib/classic_repo.py" charts "$work/repo" "$charts" "$versions" "$repo_url"
mv "$work/repo/plan.tsv" "$work/plan.tsv"
n=$((charts * versions))
archive_bytes=$(find "$work/repo" -name '*.tgz' -printf '%s\n' | awk '{s+=$1} END {print s}')
(cd "$work/repo" && exec python3 -m http.server "$web_port" --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)
wait_http "$repo_url/index.yaml"

# The registry.
start_registry registry
host=$started

export HELM_REGISTRY_CONFIG="$work/creds.json"
load() { cut -d' ' -f1-3 /proc/loadavg; }

# timed NAME COMMAND...: runs COMMAND under GNU time; sets NAME_s (wall seconds) and NAME_mib
# (peak RSS), keeps the last stdout line in NAME_out.
timed() {
  local name=$1
  shift
  local out
  out=$(/usr/bin/time -f '%e %M' -o "$work/$name.time" "$@" | tail -n1)
  printf -v "${name}_out" '%s' "$out"
  read -r secs kib <"$work/$name.time"
  printf -v "${name}_s" '%s' "$secs"
  printf -v "${name}_mib" '%s' "$((kib / 1024))"
  printf -v "${name}_load" '%s' "$(load)"
}

expect() { [[ "$2" == *"$3"* ]] || { echo "bench/migrate.sh: $1 printed '$2', expected '$3'" >&2; exit 1; }; }

timed j1 "$bin" --home "$work/home-j1" repo migrate "$repo_url" "$host/j1" --jobs 1
expect "--jobs 1" "$j1_out" "Migrated: $n, skipped: 0, failed: 0"
timed jd "$bin" --home "$work/home-jd" repo migrate "$repo_url" "$host/jd"
expect "default jobs" "$jd_out" "Migrated: $n, skipped: 0, failed: 0"
timed rerun "$bin" --home "$work/home-rerun" repo migrate "$repo_url" "$host/jd"
expect "rerun" "$rerun_out" "Migrated: 0, skipped: $n, failed: 0"

# One migrated chart layer is the archive itself, byte for byte.
archives=("$work/repo"/*.tgz)
first=${archives[0]##*/}
name=${first%-*}
ver=${first##*-}
ver=${ver%.tgz}
layer=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$host/v2/jd/$name/manifests/$ver" |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print([l["digest"] for l in m["layers"] if l["mediaType"].endswith("content.v1.tar+gzip")][0])')
[[ "$layer" == "sha256:$(sha256sum "$work/repo/$first" | cut -d' ' -f1)" ]] || { echo "bench/migrate.sh: $name:$ver layer $layer is not the archive" >&2; exit 1; }

peer="skipped (no helm-sdkpy venv at $venv: bash .ci/install-peers)"
if [[ "${NO_PEER:-0}" == 1 ]]; then
  peer="skipped (NO_PEER=1)"
elif [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import helm_sdkpy' 2>/dev/null; then
  mkdir -p "$work/helm"/{home,cache,config,data,dl}
  cat >"$work/helm/loop.py" <<'PY'
import asyncio, hashlib, json, os, sys, urllib.parse, urllib.request
import helm_sdkpy as h

repo, dest, dl, plan = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
entries = [dict(zip(("name", "version", "file", "digest"), line.split("\t")))
           for line in open(plan).read().splitlines()]
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"
cfg = h.Configuration(kubeconfig=KUBECONFIG, plain_http=True)
pushed = 0
for e in entries:
    url = urllib.parse.urljoin(repo + "/", e["file"])
    data = urllib.request.urlopen(url).read()
    if hashlib.sha256(data).hexdigest() != e["digest"]:
        sys.exit(f"digest mismatch for {url}")
    path = os.path.join(dl, f"{e['name']}-{e['version']}.tgz")
    with open(path, "wb") as f:
        f.write(data)
    asyncio.run(h.Push(cfg).run(path, f"oci://{dest}", plain_http=True))
    os.remove(path)
    pushed += 1
print(f"pushed {pushed}")
PY
  timed helm env -i PATH="$PATH" HOME="$work/helm/home" HELM_CACHE_HOME="$work/helm/cache" \
    HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data" \
    HELM_REGISTRY_CONFIG="$work/helm/config/registry.json" \
    "$venv/bin/python" "$work/helm/loop.py" "$repo_url" "$host/helm" "$work/helm/dl" "$work/plan.tsv"
  expect "the helm loop" "$helm_out" "pushed $n"
  ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
  peer="${helm_s} s   peak RSS ${helm_mib} MiB   load ${helm_load}
  ratios: --jobs 1 / helm $(ratio "$j1_s" "$helm_s")x, default / helm $(ratio "$jd_s" "$helm_s")x, rerun / default $(ratio "$rerun_s" "$jd_s")x"
fi

per() { python3 -c 'import sys; print("%.0f" % (float(sys.argv[1]) / float(sys.argv[2]) * 1000))' "$1" "$2"; }
cat <<EOF

chartcache migrate benchmark: $n chart versions ($charts charts x $versions), $((archive_bytes / 1024)) KiB of archives, $(nproc) cores
  from python http.server on 127.0.0.1, into distribution $(docker-registry --version 2>/dev/null | awk '{print $3}') on $host
  repo migrate --jobs 1        ${j1_s} s   ($(per "$j1_s" "$n") ms/version)   peak RSS ${j1_mib} MiB   load ${j1_load}
  repo migrate (default -j 4)  ${jd_s} s   ($(per "$jd_s" "$n") ms/version)   peak RSS ${jd_mib} MiB   load ${jd_load}
  rerun, nothing to do         ${rerun_s} s   peak RSS ${rerun_mib} MiB   load ${rerun_load}
  helm v4 pull + push loop     ${peer}
EOF
