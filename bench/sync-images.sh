#!/usr/bin/env bash
# sync --images benchmark: a chart that runs 3 multi-platform images (each an OCI index of
# PLATFORMS manifests with one random layer of LAYER_MB), moved registry to registry by
# `chartcache sync --images` and, in the same run, by what it replaces: `skopeo copy --all` of
# the chart and of each image, one after the other (the sum of the four copies).
#
#   sync --images   goal <= 1.0x the sum of the skopeo copies
#
# Each tool and run copies into a new, empty registry (nothing to skip or mount), and skopeo
# gets a new HOME (its blob-info cache would otherwise let it mount what an earlier copy
# left). chartcache's copies are checked: the chart and every image index keep their digests.
#
# Usage: bench/sync-images.sh [RUNS] [PLATFORMS] [LAYER_MB]   (default 5 runs, 3 platforms,
#        2 MB: three images of ~6 MB)
# CHARTCACHE_BIN=/path/to/chartcache times another build.
# Needs: docker-registry, skopeo, curl, python3 (`bash .ci/install-peers`).
set -euo pipefail

runs=${1:-5}
platforms=${2:-3}
layer_mb=${3:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-$root/target/release/chartcache}"
[[ -n "${CHARTCACHE_BIN:-}" ]] || (cd "$root" && cargo build --release --quiet)
for tool in docker-registry skopeo curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/sync-images.sh: missing $tool" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/chartcache-bench-sync-images.XXXXXX")
source "$root/bench/lib.sh"
start_registry src; src=$started
export HOME="$work/home" HELM_REGISTRY_CONFIG="$work/creds.json"
mkdir -p "$HOME"
cc=("$bin" --home "$work/cc-home")

# The images: random layers (incompressible, so sizes are real), each pushed as an OCI index;
# prints "REPO DIGEST" per image.
images=("team/web" "team/worker" "tools/init")
python3 - "$src" "$platforms" "$layer_mb" "${images[@]}" >"$work/images" <<'PY'
import hashlib, json, os, sys, urllib.request
host, n, mb, repos = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def req(method, url, data=None, ctype=None):
    r = urllib.request.Request(url, data=data, method=method)
    if ctype: r.add_header("Content-Type", ctype)
    return urllib.request.urlopen(r)
mt = "application/vnd.oci.image.manifest.v1+json"
imt = "application/vnd.oci.image.index.v1+json"
for repo in repos:
    base = f"http://{host}/v2/{repo}"
    def blob(data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        loc = req("POST", base + "/blobs/uploads/").headers["Location"]
        if loc.startswith("/"): loc = f"http://{host}{loc}"
        req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + d, data, "application/octet-stream")
        return d
    entries = []
    for arch in ["amd64", "arm64", "ppc64le", "s390x", "riscv64"][:n]:
        layer = os.urandom(mb << 20)
        cfg = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        m = json.dumps({"schemaVersion": 2, "mediaType": mt,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(cfg), "size": len(cfg)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(layer), "size": len(layer)}]}).encode()
        d = "sha256:" + hashlib.sha256(m).hexdigest()
        req("PUT", f"{base}/manifests/{d}", m, mt)
        entries.append({"mediaType": mt, "digest": d, "size": len(m), "platform": {"architecture": arch, "os": "linux"}})
    idx = json.dumps({"schemaVersion": 2, "mediaType": imt, "manifests": entries}).encode()
    req("PUT", f"{base}/manifests/1.0", idx, imt)
    print(repo, "sha256:" + hashlib.sha256(idx).hexdigest())
PY

# The chart: values in two shapes and a literal in a template, naming the three images.
chart="$work/src/app"
mkdir -p "$chart/templates"
cat >"$chart/Chart.yaml" <<YML
apiVersion: v2
name: app
version: 1.0.0
appVersion: "1.0"
YML
cat >"$chart/values.yaml" <<YML
image:
  registry: $src
  repository: team/web
  tag: "1.0"
worker:
  image:
    repository: $src/team/worker
YML
cat >"$chart/templates/deployment.yaml" <<YML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: "$src/tools/init:1.0"
      containers:
        - name: web
          image: "{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag }}"
        - name: worker
          image: "{{ .Values.worker.image.repository }}:{{ .Values.worker.image.tag | default .Chart.AppVersion }}"
YML
"${cc[@]}" chart save "$chart" "$src/charts/app:1.0.0" >/dev/null
"${cc[@]}" chart push "$src/charts/app:1.0.0" >/dev/null
found=$("${cc[@]}" chart images -q "$src/charts/app:1.0.0" | wc -l)
[[ "$found" == 3 ]] || { echo "bench/sync-images.sh: chart images found $found images, not 3" >&2; exit 1; }

digest_at() { # HOST REPO TAG: the digest the registry serves
  curl -sfI -H "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json" \
    "http://$1/v2/$2/manifests/$3" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}
chart_digest=$(digest_at "$src" charts/app 1.0.0)
check() { # DEST: chartcache's copies there have the source's digests
  local got
  got=$(digest_at "$1" cc/app 1.0.0)
  [[ "$got" == "$chart_digest" ]] || { echo "bench/sync-images.sh: chart digest $got, expected $chart_digest" >&2; exit 1; }
  while read -r repo digest; do
    got=$(digest_at "$1" "cc/${repo##*/}" 1.0)
    [[ "$got" == "$digest" ]] || { echo "bench/sync-images.sh: $repo: digest $got, expected $digest" >&2; exit 1; }
  done <"$work/images"
}
now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
skopeo_flags=(--insecure-policy --src-tls-verify=false --dest-tls-verify=false)

cc_t=(); sk_t=()
for run in $(seq "$runs"); do
  start_registry "cc$run"; dst=$started
  t0=$(now)
  "${cc[@]}" sync --images "$src/charts/app" "$dst/cc" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t1=$(now)
  cc_t+=("$(python3 -c "print($t1 - $t0)")")
  check "$dst"

  start_registry "sk$run"; dst=$started
  skhome="$work/skopeo-home-$run"; mkdir -p "$skhome"
  sk=(env HOME="$skhome" skopeo copy --all "${skopeo_flags[@]}")
  t0=$(now)
  "${sk[@]}" "docker://$src/charts/app:1.0.0" "docker://$dst/sk/app:1.0.0" >/dev/null
  while read -r repo _; do
    "${sk[@]}" "docker://$src/$repo:1.0" "docker://$dst/sk/${repo##*/}:1.0" >/dev/null
  done <"$work/images"
  t1=$(now)
  sk_t+=("$(python3 -c "print($t1 - $t0)")")
done

c=$(median "${cc_t[@]}"); s=$(median "${sk_t[@]}")
echo
echo "chartcache sync --images benchmark ($runs runs, median; a chart + 3 images, each an index of $platforms platforms x $layer_mb MB; $(skopeo --version); $(nproc) cores)"
printf '  chartcache sync --images %.3f s   skopeo copy --all x4 %.3f s   ratio %sx  (goal <= 1.00x)\n' "$c" "$s" "$(ratio "$c" "$s")"
echo "  runs: chartcache ${cc_t[*]}"
echo "        skopeo     ${sk_t[*]}"
