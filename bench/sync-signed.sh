#!/usr/bin/env bash
# Signed sync benchmark: 40 chart tags, each with a cosign signature (sha256-<hex>.sig, made
# with a P-256 key by openssl) and an SBOM referrer (OCI 1.1 subject, in the referrers tag
# schema), synced between two local CNCF distribution registries.
#
#   copy     `chartcache sync` (charts, signatures and SBOMs) against `skopeo sync` of the
#            same 40 chart tags (skopeo copies no referrers)               goal <= 0.50x skopeo
#   policy   `chartcache sync --require-signed --cosign-key` against the same sync without
#            the policy (every signature checked at the source first)     goal <= 1.10x
#
# CHARTCACHE_BIN=/path/to/chartcache times another build.
# Usage: bench/sync-signed.sh [RUNS] [TAGS]   (default 5 runs, 40 tags; median reported)
# Needs: docker-registry, skopeo, openssl, curl, python3. Builds the release binary (in
#        $CARGO_TARGET_DIR or target/). Each run gives each sync its own new, empty
#        destination registry (and skopeo a new HOME, so its blob-info cache cannot turn a
#        cold copy into mounts); the three take turns going first.
set -euo pipefail

runs=${1:-5}
tags=${2:-40}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/chartcache}"
[[ -n "${CHARTCACHE_BIN:-}" ]] || (cd "$root" && cargo build --release --quiet)
for tool in docker-registry skopeo openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/sync-signed.sh: missing $tool: run 'bash .ci/install-peers'" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/chartcache-bench-signed.XXXXXX")
source "$root/bench/lib.sh"
stop_registry() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
start_registry src; src=$started

export HOME="$work/home" HELM_REGISTRY_CONFIG="$work/creds.json"
mkdir -p "$HOME"
printf '{"default":[{"type":"insecureAcceptAnything"}]}' >"$work/policy.json"

# The signing key, as `cosign generate-key-pair` would make it: ECDSA P-256.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/cosign.key" 2>/dev/null
openssl ec -in "$work/cosign.key" -pubout -out "$work/cosign.pub" 2>/dev/null

# $tags versions of one small chart, pushed with `chart push`, then each signed and given an
# SBOM by bench/lib/sign_tags.py (not by the code being measured).
chart="$work/chart/app"
mkdir -p "$chart/templates"
cp -r "$root/testdata/charts/simple/templates/." "$chart/templates/"
cp "$root/testdata/charts/simple/values.yaml" "$chart/"
seed="$work/seed"
versions=()
for i in $(seq 0 $((tags - 1))); do
  printf 'apiVersion: v2\nname: app\nversion: 1.0.%d\ndescription: signed sync benchmark chart\n' "$i" >"$chart/Chart.yaml"
  "$bin" --home "$seed" -q chart save "$chart" "$src/bench/app:1.0.$i"
  versions+=("1.0.$i")
done
printf '%s\n' "${versions[@]}" | xargs -P 4 -I{} "$bin" --home "$seed" -q chart push "$src/bench/app:{}"
python3 "$root/bench/lib/sign_tags.py" "$src" bench/app "$work/cosign.key" "${versions[@]}"

# skopeo gets exactly the chart tags (its `sync` of the whole repository would take the
# signature and index tags as images of their own).
{
  echo "$src:"
  echo "  tls-verify: false"
  echo "  images:"
  echo "    bench/app: [$(printf '"%s",' "${versions[@]}" | sed 's/,$//')]"
} >"$work/skopeo.yml"

for f in cc sig sk; do : >"$work/$f"; done
running=()
for i in $(seq "$runs"); do
  for p in "${running[@]}"; do stop_registry "$p"; done
  start_registry "dst-cc$i"; dst_cc=$started; running=("$started_pid")
  start_registry "dst-sig$i"; dst_sig=$started; running+=("$started_pid")
  start_registry "dst-sk$i"; dst_sk=$started; running+=("$started_pid")
  mkdir -p "$work/sk-home$i"
  cc=(timed_cpu "$work/cc" "$bin" --home "$work/cc-home" -q sync "$src/bench/app" "$dst_cc/mirror")
  sig=(timed_cpu "$work/sig" "$bin" --home "$work/cc-home" -q sync --require-signed --cosign-key "$work/cosign.pub" "$src/bench/app" "$dst_sig/mirror")
  sk=(timed_cpu "$work/sk" env HOME="$work/sk-home$i" skopeo --policy "$work/policy.json" sync --src yaml --dest docker --dest-tls-verify=false "$work/skopeo.yml" "$dst_sk/mirror")
  case $((i % 3)) in
    0) "${cc[@]}"; "${sig[@]}"; "${sk[@]}" ;;
    1) "${sig[@]}"; "${sk[@]}"; "${cc[@]}" ;;
    2) "${sk[@]}"; "${cc[@]}"; "${sig[@]}" ;;
  esac
done

# What each made: every chart with the source's digest; chartcache's with their signature
# and their SBOM (the tag schema index listing it).
python3 - "$src" "$dst_cc" "$dst_sig" "$dst_sk" "$tags" <<'PY'
import json, sys, urllib.request
src, dst_cc, dst_sig, dst_sk, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
accept = {"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"}
def get(host, repo, ref):
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{ref}", headers=accept)
    with urllib.request.urlopen(req) as r:
        return r.headers["Docker-Content-Digest"], r.read()
tags = [t for t in json.load(urllib.request.urlopen(f"http://{src}/v2/bench/app/tags/list"))["tags"] if not t.startswith("sha256-")]
assert len(tags) == n, len(tags)
for t in tags:
    want, _ = get(src, "bench/app", t)
    hexd = want.split(":", 1)[1]
    assert get(dst_sk, "mirror/app", t)[0] == want, f"skopeo: {t}"
    for dst in (dst_cc, dst_sig):
        assert get(dst, "mirror/app", t)[0] == want, f"{dst}: {t}"
        assert get(dst, "mirror/app", f"sha256-{hexd}.sig")[0] == get(src, "bench/app", f"sha256-{hexd}.sig")[0]
        index = json.loads(get(dst, "mirror/app", f"sha256-{hexd}")[1])
        assert len(index["manifests"]) == 1, index
PY

cc=$(median_col "$work/cc"); sig=$(median_col "$work/sig"); sk=$(median_col "$work/sk")
cpu() { ms "$(median_col "$work/$1" 2)"; }
cat <<OUT

chartcache signed sync benchmark ($runs runs each, median; $tags chart tags, each with a cosign signature and an SBOM referrer; $(skopeo --version); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end)
  copy    chartcache sync ${cc} s (charts, signatures, SBOMs)   skopeo sync ${sk} s (charts only)   ratio $(ratio "$cc" "$sk")x  (goal <= 0.50x)
  policy  chartcache sync --require-signed ${sig} s   without ${cc} s   ratio $(ratio "$sig" "$cc")x  (goal <= 1.10x)
  CPU     chartcache $(cpu cc) ms, with --require-signed $(cpu sig) ms, skopeo $(cpu sk) ms
OUT
