#!/usr/bin/env bash
# Copy-engine benchmark: a multi-platform image (an OCI index of PLATFORMS manifests, each with
# one random layer of LAYER_MB) moved by `chartcache sync` and by `skopeo copy --all`, in the
# same run, between local CNCF distribution registries:
#
#   reg->reg        registry to registry                                  goal <= 1.0x skopeo
#   via archive     registry -> oci-archive:FILE -> registry (two steps)  goal <= 1.0x skopeo
#   peak RSS        of chartcache's largest step                          goal <= 64 MB
#
# Each tool and run copies into new repositories (nothing to skip or mount); chartcache's copies
# are checked to have the source index's digest (skopeo 1.9 re-serialises this index).
#
# Usage: bench/copy.sh [RUNS] [PLATFORMS] [LAYER_MB]   (default 3 runs, 3 platforms, 100 MB:
#        an image of ~300 MB)
# CHARTCACHE_BIN=/path/to/chartcache times another build.
# Needs: docker-registry, skopeo, curl, python3, GNU time (`bash .ci/install-peers`).
set -euo pipefail

runs=${1:-3}
platforms=${2:-3}
layer_mb=${3:-100}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-$root/target/release/chartcache}"
[[ -n "${CHARTCACHE_BIN:-}" ]] || (cd "$root" && cargo build --release --quiet)
for tool in docker-registry skopeo curl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/copy.sh: missing $tool" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/chartcache-bench-copy.XXXXXX")
source "$root/bench/lib.sh"
start_registry src; src=$started
export HOME="$work/home" HELM_REGISTRY_CONFIG="$work/creds.json"
mkdir -p "$HOME"

# The image: random layers (incompressible, so sizes are real), pushed as an OCI index.
index_digest=$(python3 - "$src" "$platforms" "$layer_mb" <<'PY'
import hashlib, json, os, sys, urllib.request
host, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = f"http://{host}/v2/bench/img"
def req(method, url, data=None, ctype=None):
    r = urllib.request.Request(url, data=data, method=method)
    if ctype: r.add_header("Content-Type", ctype)
    return urllib.request.urlopen(r)
def blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = req("POST", base + "/blobs/uploads/").headers["Location"]
    if loc.startswith("/"): loc = f"http://{host}{loc}"
    req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + d, data, "application/octet-stream")
    return d
mt = "application/vnd.oci.image.manifest.v1+json"
entries = []
for i, arch in enumerate(["amd64", "arm64", "ppc64le", "s390x", "riscv64"][:n]):
    layer = os.urandom(mb << 20)
    cfg = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    m = json.dumps({"schemaVersion": 2, "mediaType": mt,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(layer), "size": len(layer)}]}).encode()
    d = "sha256:" + hashlib.sha256(m).hexdigest()
    req("PUT", f"{base}/manifests/{d}", m, mt)
    entries.append({"mediaType": mt, "digest": d, "size": len(m), "platform": {"architecture": arch, "os": "linux"}})
imt = "application/vnd.oci.image.index.v1+json"
idx = json.dumps({"schemaVersion": 2, "mediaType": imt, "manifests": entries}).encode()
req("PUT", f"{base}/manifests/1", idx, imt)
print("sha256:" + hashlib.sha256(idx).hexdigest())
PY
)

# digest_at HOST REPO: the digest the registry serves for REPO:1.
digest_at() {
  curl -sfI -H "Accept: application/vnd.oci.image.index.v1+json" "http://$1/v2/$2/manifests/1" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}
check() {
  local got; got=$(digest_at "$dst" "$1")
  [[ "$got" == "$index_digest" ]] || { echo "bench/copy.sh: $1: digest $got, expected $index_digest" >&2; exit 1; }
}
# timed OUTVAR RSSVAR COMMAND…: wall seconds and peak RSS (KiB) of COMMAND.
timed() {
  local -n _t=$1 _m=$2; shift 2
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  end=$(date +%s.%N)
  _t=$(python3 -c "print($end - $start)")
  _m=$(cat "$work/rss")
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
skopeo_flags=(--insecure-policy --src-tls-verify=false --dest-tls-verify=false)

cc_r=(); sk_r=(); cc_a=(); sk_a=(); rss=0
for run in $(seq "$runs"); do
  # Every copy goes into a new, empty registry, and skopeo gets a new HOME: its blob-info
  # cache would otherwise mount blobs an earlier copy left there, and "cold" would not be.
  skhome="$work/skopeo-home-$run"; mkdir -p "$skhome"
  sk=(env HOME="$skhome" skopeo copy --all "${skopeo_flags[@]}")

  start_registry "cc$run"; dst=$started
  timed t m "$bin" sync "$src/bench/img:1" "$dst/cc"; cc_r+=("$t"); rss=$((m > rss ? m : rss))
  check "cc/img"
  start_registry "sk$run"; dst=$started
  timed t m "${sk[@]}" "docker://$src/bench/img:1" "docker://$dst/sk/img:1"; sk_r+=("$t")

  rm -f "$work/cc.tar" "$work/sk.tar"
  start_registry "cca$run"; dst=$started
  timed t1 m "$bin" sync "$src/bench/img:1" "oci-archive:$work/cc.tar"; rss=$((m > rss ? m : rss))
  timed t2 m "$bin" sync "oci-archive:$work/cc.tar" "$dst/cca"; rss=$((m > rss ? m : rss))
  cc_a+=("$(python3 -c "print($t1 + $t2)")")
  check "cca/img"
  start_registry "ska$run"; dst=$started
  timed t1 m "${sk[@]}" "docker://$src/bench/img:1" "oci-archive:$work/sk.tar:img"
  timed t2 m "${sk[@]}" "oci-archive:$work/sk.tar:img" "docker://$dst/ska/img:1"
  sk_a+=("$(python3 -c "print($t1 + $t2)")")
done

c=$(median "${cc_r[@]}"); s=$(median "${sk_r[@]}")
ca=$(median "${cc_a[@]}"); sa=$(median "${sk_a[@]}")
echo
echo "chartcache copy benchmark ($runs runs, median; an index of $platforms platforms x $layer_mb MB; $(skopeo --version); $(nproc) cores)"
printf '  reg->reg     chartcache sync %.3f s   skopeo copy --all %.3f s   ratio %sx  (goal <= 1.00x)\n' "$c" "$s" "$(ratio "$c" "$s")"
printf '  via archive  chartcache sync %.3f s   skopeo copy --all %.3f s   ratio %sx  (goal <= 1.00x)\n' "$ca" "$sa" "$(ratio "$ca" "$sa")"
printf '  peak RSS of chartcache: %d MiB (goal <= 64 MiB)\n' "$((rss / 1024))"
echo "  (only chartcache's copies are digest-checked: skopeo 1.9 re-serialises this index, even registry to registry)"
