#!/usr/bin/env bash
# Serve benchmark: `chartcache serve` against nginx serving the same bytes as static files, in
# the same run, with the same load generator (wrk, keep-alive connections).
#
#   index   GET /index.yaml of a cache holding 10,000 chart versions (100 charts x 100),
#           requests per second                                          goal >= 0.5x nginx
#   gzip    the same with Accept-Encoding: gzip, against nginx's gzip_static serving the
#           same compressed bytes, rps                                   goal >= 1.0x nginx
#           and bytes on the wire against the plain index               goal <= 0.20x
#   chart   GET /charts/big-1.0.0.tgz, a ~1 MB chart archive, rps          goal >= 0.5x nginx
#   memory  peak resident memory of chartcache serve while 200 connections download a
#           ~20 MB chart at once (streamed from disk, not held in memory)
#   bridge  first pull of a ~1 MB chart through the classic bridge (manifest + layer, a new
#           cache each run) against curl of the archive from the classic repository (nginx),
#           median of 5                                                  goal <= 1.5x curl
#   large   the index of a cache of LARGE chart versions (default 100,000): time to the first
#           /index.yaml (scan, build, render, compress) and the server's RSS after it
#
# Usage: bench/serve.sh [SECONDS]      (default 5 s per wrk run; from anywhere; LARGE=N)
# Needs: wrk, nginx (apt-get install wrk nginx), python3, curl. Builds target/release if
#        missing. chartcache runs with -q (no access log) and nginx with access_log off.
# Scratch: bench/work/serve/ (gitignored), removed at the end unless KEEP=1.
set -euo pipefail

secs=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-$root/target/release/chartcache}"
if [[ ! -x "$bin" ]]; then
  echo "building $bin" >&2
  (cd "$root" && cargo build --release --quiet)
fi
for tool in wrk nginx python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench/serve.sh: missing $tool (apt-get install wrk nginx curl)" >&2; exit 1; }
done

work="$root/bench/work/serve"
rm -rf "$work"
mkdir -p "$work"
source "$root/bench/lib.sh"

# --- the cache: 10,000 chart versions, a 1 MB chart and a 20 MB chart ------------------------
home="$work/home"
reg="$home/registry"
"$bin" --home "$home" -q chart save "$root/testdata/charts/simple" localhost:5000/bench/seed/simple:0.1.0

# Charts with incompressible payloads (files under Helm's 5 MiB cap).
python3 - "$work/gen" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for name, mib in (("big", 1), ("huge", 20)):
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "templates"))
    with open(os.path.join(d, "Chart.yaml"), "w") as f:
        f.write(f"apiVersion: v2\nname: {name}\nversion: 1.0.0\ndescription: bench/serve.sh\n")
    left = mib * 1024 * 1024 - 64 * 1024
    i = 0
    while left > 0:
        n = min(left, 4 * 1024 * 1024)
        with open(os.path.join(d, f"data{i}.bin"), "wb") as f:
            f.write(rng.randbytes(n))
        left -= n
        i += 1
PY
"$bin" --home "$home" -q chart save "$work/gen/big" localhost:5000/bench/files/big
"$bin" --home "$home" -q chart save "$work/gen/huge" localhost:5000/bench/files/huge

# 10,000 distinct chart versions, written the way the store writes them (src/store/refs.rs,
# layout.rs): a config and a manifest blob each, the chart version marker, the ref's relative
# links and an index.json entry. They share the seed's archive. `chart verify` checks the result.
cat >"$work/gen.py" <<'PY'
import hashlib, json, os, sys
reg = sys.argv[1]
charts, versions = int(sys.argv[2]), int(sys.argv[3])
seed = os.path.join(reg, "refs/localhost_5000/bench/seed/simple/tags/0.1.0")
content = os.readlink(os.path.join(seed, "content")).replace("../", "")
content_size = os.path.getsize(os.path.join(reg, content))
content_hex = os.path.basename(content)

def put(data):
    h = hashlib.sha256(data).hexdigest()
    p = os.path.join(reg, "blobs/sha256", h)
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)
    return h

with open(os.path.join(reg, "index.json")) as f:
    index = json.load(f)
for c in range(charts):
    name = f"chart-{c:03}"
    repo = f"bench/team-{c % 10}/{name}"
    for v in range(versions):
        version = f"1.{v // 10}.{v % 10}"
        meta = {"name": name, "version": version, "apiVersion": "v2", "appVersion": f"{v}.0",
                "description": f"Generated chart {name} for bench/serve.sh",
                "home": "https://example.com/" + name, "keywords": ["bench", "serve"],
                "maintainers": [{"name": "Bench", "email": "bench@example.com"}], "type": "application"}
        config = json.dumps(meta, separators=(",", ":")).encode()
        ch = put(config)
        manifest = json.dumps({"schemaVersion": 2,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": "sha256:" + ch, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": "sha256:" + content_hex, "size": content_size}],
            "annotations": {"org.opencontainers.image.title": name, "org.opencontainers.image.version": version}},
            separators=(",", ":")).encode()
        mh = put(manifest)
        os.makedirs(os.path.join(reg, "charts", name, "versions"), exist_ok=True)
        with open(os.path.join(reg, "charts", name, "versions", version), "w") as f:
            f.write("-")
        d = os.path.join(reg, "refs/localhost_5000", repo, "tags", version)
        os.makedirs(d)
        up = "../" * (repo.count("/") + 1 + 4)
        for link, target in (("chart", f"charts/{name}/versions/{version}"), ("content", content),
                             ("meta", "blobs/sha256/" + ch), ("manifest", "blobs/sha256/" + mh)):
            os.symlink(up + target, os.path.join(d, link))
        index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + mh, "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": f"localhost:5000/{repo}:{version}"}})
index["manifests"].sort(key=lambda e: e["annotations"]["org.opencontainers.image.ref.name"])
with open(os.path.join(reg, "index.json"), "w") as f:
    json.dump(index, f, separators=(",", ":"))
PY
python3 "$work/gen.py" "$reg" 100 100
"$bin" --home "$home" chart verify >/dev/null || { echo "bench/serve.sh: the generated cache does not verify" >&2; exit 1; }

# --- the servers --------------------------------------------------------------------------------
cc_port=$(free_port)
"$bin" --home "$home" -q serve --listen "127.0.0.1:$cc_port" >"$work/serve.out" 2>"$work/serve.err" &
cc_pid=$!
pids+=("$cc_pid")
wait_http "http://127.0.0.1:$cc_port/v2/"
cc="http://127.0.0.1:$cc_port"

# nginx serves the very bytes chartcache serves, as static files.
static="$work/static"
mkdir -p "$static/charts"
t0=$(python3 -c 'import time; print(time.perf_counter())')
curl -fs "$cc/index.yaml" -o "$static/index.yaml"
# What chartcache sends a gzip client, beside the file as nginx's gzip_static serves it.
curl -fs -H 'Accept-Encoding: gzip' "$cc/index.yaml" -o "$static/index.yaml.gz"
cmp -s <(gzip -dc "$static/index.yaml.gz") "$static/index.yaml" || { echo "bench/serve.sh: the gzip index is not the index" >&2; exit 1; }
t1=$(python3 -c 'import time; print(time.perf_counter())')
first_index_ms=$(python3 -c 'import sys; print("%.0f" % ((float(sys.argv[2]) - float(sys.argv[1])) * 1000))' "$t0" "$t1")
curl -fs "$cc/charts/big-1.0.0.tgz" -o "$static/charts/big-1.0.0.tgz"
curl -fs "$cc/charts/huge-1.0.0.tgz" -o "$static/charts/huge-1.0.0.tgz"
entries=$(python3 -c 'import sys, re; print(sum(1 for l in open(sys.argv[1]) if re.match(r"^  - ", l)))' "$static/index.yaml")
[[ "$entries" -ge 10000 ]] || { echo "bench/serve.sh: index.yaml has only $entries entries" >&2; exit 1; }
cmp -s "$static/charts/big-1.0.0.tgz" "$reg/refs/localhost_5000/bench/files/big/tags/1.0.0/content" ||
  { echo "bench/serve.sh: the served chart differs from the stored one" >&2; exit 1; }

ng_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  types { application/yaml yaml; application/gzip tgz; }
  gzip_static on;
  server { listen 127.0.0.1:$ng_port; root $static; }
}
EOF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" 2>"$work/nginx/stderr" &
pids+=("$!")
ng="http://127.0.0.1:$ng_port"
wait_http "$ng/index.yaml"
cmp -s <(curl -fs "$ng/index.yaml") <(curl -fs "$cc/index.yaml") || { echo "bench/serve.sh: nginx and chartcache disagree on index.yaml" >&2; exit 1; }

# rps URL CONNECTIONS [HEADER]: wrk's requests per second (2 threads: this machine's cores are shared).
rps() {
  wrk -t2 -c"$2" -d"${secs}s" --latency ${3:+-H "$3"} "$1" >"$work/wrk.out" 2>&1
  grep -q "Non-2xx" "$work/wrk.out" && { echo "bench/serve.sh: errors from $1" >&2; cat "$work/wrk.out" >&2; exit 1; }
  awk '/Requests\/sec/ {print $2}' "$work/wrk.out"
}
transfer() { awk '/Transfer\/sec/ {print $2}' "$work/wrk.out"; }

index_bytes=$(stat -c %s "$static/index.yaml")
big_bytes=$(stat -c %s "$static/charts/big-1.0.0.tgz")
huge_bytes=$(stat -c %s "$static/charts/huge-1.0.0.tgz")

# rps_pair NAME URL_PATH [HEADER]: chartcache and nginx taking turns, three runs each (a single
# run of a few seconds swings by 10-20% on a shared machine); sets cc_NAME and ng_NAME to the
# medians.
rps_pair() {
  local name=$1 path=$2 header=${3:-} c=() n=()
  for _ in 1 2 3; do
    c+=("$(rps "$cc$path" 16 "$header")")
    n+=("$(rps "$ng$path" 16 "$header")")
  done
  printf -v "cc_$name" '%s' "$(median "${c[@]}")"
  printf -v "ng_$name" '%s' "$(median "${n[@]}")"
}
median() { python3 -c 'import statistics, sys; print("%.1f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

rps_pair index /index.yaml
gz_bytes=$(stat -c %s "$static/index.yaml.gz")
cmp -s <(curl -fs -H 'Accept-Encoding: gzip' "$ng/index.yaml") "$static/index.yaml.gz" || { echo "bench/serve.sh: nginx does not serve the .gz" >&2; exit 1; }
rps_pair gz /index.yaml "Accept-Encoding: gzip"
cc_big=$(rps "$cc/charts/big-1.0.0.tgz" 16)
ng_big=$(rps "$ng/charts/big-1.0.0.tgz" 16)
cc_rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$cc_pid/status")
rps "$cc/charts/huge-1.0.0.tgz" 200 >/dev/null
cc_huge=$(transfer)
rps "$ng/charts/huge-1.0.0.tgz" 200 >/dev/null
ng_huge=$(transfer)
cc_hwm=$(awk '/VmHWM/ {print $2}' "/proc/$cc_pid/status")

# --- the classic bridge: a classic repository (nginx, static) served as OCI -------------------
classic="$static/classic"
mkdir -p "$classic"
cp "$static/charts/big-1.0.0.tgz" "$classic/big-1.0.0.tgz"
big_hex=$(sha256sum "$classic/big-1.0.0.tgz" | cut -d' ' -f1)
printf '%s\n' "apiVersion: v1" "entries:" "  big:" "  - apiVersion: v2" \
  "    created: \"2026-01-01T00:00:00Z\"" "    description: bench/serve.sh" "    digest: $big_hex" \
  "    name: big" "    urls:" "    - big-1.0.0.tgz" "    version: 1.0.0" \
  "generated: \"2026-01-01T00:00:00Z\"" >"$classic/index.yaml"
# now_ms: a monotonic clock in milliseconds.
now_ms() { python3 -c 'import time; print("%.3f" % (time.monotonic() * 1000))'; }
bridge_runs=()
curl_runs=()
for run in 1 2 3 4 5; do
  bhome="$work/bridge-$run"
  bport=$(free_port)
  "$bin" --home "$bhome" -q serve --listen "127.0.0.1:$bport" --upstream "$ng/classic/" --upstream-kind classic >/dev/null 2>"$work/bridge.err" &
  bpid=$!
  pids+=("$bpid")
  wait_http "http://127.0.0.1:$bport/healthz"
  t0=$(now_ms)
  curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$bport/v2/big/manifests/1.0.0" -o /dev/null
  curl -fs "http://127.0.0.1:$bport/v2/big/blobs/sha256:$big_hex" -o "$work/bridge.tgz"
  t1=$(now_ms)
  kill "$bpid"
  wait "$bpid" 2>/dev/null || true
  cmp -s "$work/bridge.tgz" "$classic/big-1.0.0.tgz" || { echo "bench/serve.sh: the bridge served other bytes" >&2; exit 1; }
  t2=$(now_ms)
  curl -fs "$ng/classic/big-1.0.0.tgz" -o "$work/curl.tgz"
  t3=$(now_ms)
  bridge_runs+=("$(python3 -c "print($t1 - $t0)")")
  curl_runs+=("$(python3 -c "print($t3 - $t2)")")
done
bridge_ms=$(median "${bridge_runs[@]}")
curl_ms=$(median "${curl_runs[@]}")

# --- a large cache: the index build and the memory it leaves ------------------------------------
large=${LARGE:-100000}
lhome="$work/large"
"$bin" --home "$lhome" -q chart save "$root/testdata/charts/simple" localhost:5000/bench/seed/simple:0.1.0
python3 "$work/gen.py" "$lhome/registry" $((large / 100)) 100
lport=$(free_port)
"$bin" --home "$lhome" -q serve --listen "127.0.0.1:$lport" >/dev/null 2>"$work/large.err" &
lpid=$!
pids+=("$lpid")
wait_http "http://127.0.0.1:$lport/healthz"
l_rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$lpid/status")
t0=$(now_ms)
curl -fs "http://127.0.0.1:$lport/index.yaml" -o "$work/large.yaml"
t1=$(now_ms)
curl -fs -H 'Accept-Encoding: gzip' "http://127.0.0.1:$lport/index.yaml" -o "$work/large.yaml.gz"
large_build_ms=$(python3 -c "print('%.0f' % ($t1 - $t0))")
large_entries=$(grep -c '^  - ' "$work/large.yaml")
large_plain=$(stat -c %s "$work/large.yaml")
large_gz=$(stat -c %s "$work/large.yaml.gz")
l_rss=$(awk '/VmRSS/ {print $2}' "/proc/$lpid/status")
l_hwm=$(awk '/VmHWM/ {print $2}' "/proc/$lpid/status")
load=$(cut -d' ' -f1-3 /proc/loadavg)

cat <<EOF

chartcache serve benchmark (wrk -t2, ${secs} s per run, index and gzip: median of 3 turns each, keep-alive; $(nproc) cores, load $load)
  index   GET /index.yaml ($entries entries, $((index_bytes / 1024)) KiB; first build ${first_index_ms} ms), 16 connections
          chartcache ${cc_index} req/s   nginx ${ng_index} req/s   ratio $(ratio "$cc_index" "$ng_index")x  (goal >= 0.50x)
  gzip    GET /index.yaml with Accept-Encoding: gzip ($((gz_bytes / 1024)) KiB on the wire), 16 connections
          chartcache ${cc_gz} req/s   nginx gzip_static ${ng_gz} req/s   ratio $(ratio "$cc_gz" "$ng_gz")x  (goal >= 1.00x)
          bytes on the wire: $gz_bytes of $index_bytes   ratio $(ratio "$gz_bytes" "$index_bytes")x  (goal <= 0.20x)
  chart   GET /charts/big-1.0.0.tgz ($((big_bytes / 1024)) KiB), 16 connections
          chartcache ${cc_big} req/s   nginx ${ng_big} req/s   ratio $(ratio "$cc_big" "$ng_big")x  (goal >= 0.50x)
  memory  GET /charts/huge-1.0.0.tgz ($((huge_bytes / 1024 / 1024)) MiB), 200 connections at once
          chartcache ${cc_huge}/s   nginx ${ng_huge}/s;  chartcache peak RSS $((cc_hwm / 1024)) MiB (before the 200: $((cc_rss_before / 1024)) MiB)
  bridge  first pull of big 1.0.0 ($((big_bytes / 1024)) KiB) through the classic bridge (manifest + layer, new cache), median of 5
          chartcache ${bridge_ms} ms   curl of the archive ${curl_ms} ms   ratio $(ratio "$bridge_ms" "$curl_ms")x  (goal <= 1.50x)
  large   index of $large_entries chart versions: first /index.yaml in ${large_build_ms} ms (scan, build, render, compress)
          index $((large_plain / 1024 / 1024)) MiB plain, $((large_gz / 1024)) KiB gzip;  server RSS $((l_rss / 1024)) MiB after (peak $((l_hwm / 1024)) MiB, $((l_rss_before / 1024)) MiB before)
EOF
