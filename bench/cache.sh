#!/usr/bin/env bash
# Cache benchmark: chartcache against the plain tools doing the least that could replace it, in
# the same run, on the same files.
#
#   save  `chartcache chart save DIR REF` of a generated ~20 MB chart (into a fresh cache each
#         run) against `tar -czf out.tgz DIR && sha256sum out.tgz`.       goal <= 1.2x
#   list  `chartcache chart list` of a cache holding 10,000 refs against
#         `find refs -type l` over the same cache.                        goal <= 3x
#   tag   `chartcache chart tag` of one new ref (process start included) into a cache of 100
#         refs and into one of 100,000; also moving a tag to another chart and `chart remove`.
#         goal: <= 2 ms per new ref at 100,000, and each the same at both sizes (<= 1.2x)
#
# CHARTCACHE_BIN=/path/to/chartcache times another build (before and after a change).
# Usage: bench/cache.sh [RUNS] [TAGS]  (from anywhere; default 5 runs each, median reported;
#        100 commands per `tag` figure)
# Needs: bash, python3, tar, gzip, sha256sum. Uses hyperfine when installed
#        (apt-get install hyperfine; NO_HYPERFINE=1 to not), else its own timing loop. Builds
#        target/release if missing.
# Scratch: bench/work/cache/ (gitignored; BENCH_WORK=DIR puts it in DIR/cache instead, such as
#        a tmpfs, to time the cache rather than the disk), removed at the end unless KEEP=1.
set -euo pipefail

runs=${1:-5}
tag_n=${2:-100}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CHARTCACHE_BIN:-$root/target/release/chartcache}"
if [[ ! -x "$bin" ]]; then
  echo "building $bin" >&2
  (cd "$root" && cargo build --release --quiet)
fi
for tool in python3 tar gzip sha256sum find; do
  command -v "$tool" >/dev/null || { echo "bench/cache.sh: missing $tool" >&2; exit 1; }
done

work="${BENCH_WORK:-$root/bench/work}/cache"
rm -rf "$work"
mkdir -p "$work"
source "$root/bench/lib.sh"

use_hyperfine() { [[ "${NO_HYPERFINE:-0}" != 1 ]] && command -v hyperfine >/dev/null; }
if use_hyperfine; then timer="hyperfine $(hyperfine --version | cut -d' ' -f2)"; else timer="bash/python loop"; fi

# median_time NAME PREPARE COMMAND: prints the median wall time in seconds of COMMAND (run by
# bash) over $runs runs after one warm-up, running PREPARE (untimed; may be "") before each.
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


# --- 1. save: a ~20 MB chart ------------------------------------------------------------------
# Deterministic (seeded) chart: Chart.yaml, values.yaml and ~200 templates of Kubernetes-like
# YAML with Go template expressions, from 2 KB to a few 1-3 MB CRD-like files (every file under
# Helm's 5 MiB cap). Words come from a small vocabulary, so it compresses like templates do
# (about 6x with gzip; the real charts in ../shared/testdata compress 8-12x).
chart="$work/gen/big"
python3 - "$chart" <<'PY'
import os, random, sys

root = sys.argv[1]
rng = random.Random(20240611)
os.makedirs(os.path.join(root, "templates"), exist_ok=True)

words = """app api apply backend batch cache canary cert check cluster config container
controller cron daemon data database debug default deploy disk dns endpoint env event exporter
external fluent frontend gateway grpc health host http image ingress init istio job kafka key
kube label leader limit liveness log manager memory metric monitor mount namespace network node
operator path pod policy port probe prometheus proxy queue readiness redis release replica
request resource role route rule runtime scheduler secret selector server service session shard
sidecar storage stream sync target task timeout tls token topology traffic upstream user volume
webhook worker zone""".split()
sentence_words = """the of a to is in for and that when this be are with if it not on as by
from must should may will each set used value field which only default enables specifies
defines optional number name list object string containing configuration""".split()

def w():
    return rng.choice(words)

def camel(n=2):
    parts = [w() for _ in range(n)]
    return parts[0] + "".join(p.capitalize() for p in parts[1:])

def sentence(n):
    s = " ".join(rng.choice(sentence_words + words) for _ in range(n))
    return s[0].upper() + s[1:] + "."

def deployment(i):
    name = f"{w()}-{w()}"
    env = "".join(
        f"            - name: {w().upper()}_{w().upper()}\n"
        f"              value: {{{{ .Values.{camel()}.{camel()} | quote }}}}\n"
        for _ in range(rng.randint(3, 12)))
    ports = "".join(
        f"            - name: {w()}\n              containerPort: {rng.randint(1024, 65535)}\n"
        f"              protocol: TCP\n" for _ in range(rng.randint(1, 3)))
    return f"""{{{{- if .Values.{camel()}.enabled }}}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ include "big.fullname" . }}}}-{name}-{i}
  namespace: {{{{ .Release.Namespace }}}}
  labels:
    {{{{- include "big.labels" . | nindent 4 }}}}
    app.kubernetes.io/component: {w()}
  annotations:
    checksum/config: {{{{ include (print $.Template.BasePath "/{w()}-configmap.yaml") . | sha256sum }}}}
spec:
  replicas: {{{{ .Values.{camel()}.replicaCount | default {rng.randint(1, 5)} }}}}
  selector:
    matchLabels:
      {{{{- include "big.selectorLabels" . | nindent 6 }}}}
  template:
    metadata:
      labels:
        {{{{- include "big.selectorLabels" . | nindent 8 }}}}
    spec:
      serviceAccountName: {{{{ include "big.serviceAccountName" . }}}}
      containers:
        - name: {w()}
          image: "{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag | default .Chart.AppVersion }}}}"
          imagePullPolicy: {{{{ .Values.image.pullPolicy }}}}
          args:
            - --{w()}-{w()}={{{{ .Values.{camel()}.{camel()} }}}}
            - --{w()}-{w()}={rng.randint(0, 10000)}
          ports:
{ports}          env:
{env}          livenessProbe:
            httpGet:
              path: /{w()}/{w()}
              port: {w()}
            initialDelaySeconds: {rng.randint(1, 60)}
            periodSeconds: {rng.randint(5, 30)}
          resources:
            {{{{- toYaml .Values.{camel()}.resources | nindent 12 }}}}
{{{{- end }}}}
---
"""

def crd_props(depth):
    out = []
    ind = "  " * (depth + 6)
    for _ in range(rng.randint(2, 6)):
        name = camel(rng.randint(1, 3))
        out.append(f"{ind}{name}:\n{ind}  description: {sentence(rng.randint(6, 30))}\n")
        if depth < 4 and rng.random() < 0.35:
            out.append(f"{ind}  type: object\n{ind}  properties:\n")
            out.extend(crd_props(depth + 2))
        else:
            t = rng.choice(["string", "integer", "boolean", "string", "array"])
            out.append(f"{ind}  type: {t}\n")
            if t == "array":
                out.append(f"{ind}  items:\n{ind}    type: string\n")
    return out

def crd(i):
    kind = camel(2).capitalize()
    head = f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {kind.lower()}s.{w()}.example.com
  annotations:
    controller-gen.kubebuilder.io/version: v0.{rng.randint(2, 14)}.{rng.randint(0, 9)}
spec:
  group: {w()}.example.com
  names:
    kind: {kind}
    plural: {kind.lower()}s
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
"""
    return head + "".join(crd_props(0)) + "---\n"

total = 0
target = 20 * 1024 * 1024
i = 0
while total < target:
    i += 1
    big = i % 40 == 0
    limit = rng.randint(1_000_000, 3_000_000) if big else int(rng.lognormvariate(10.5, 1.0))
    limit = max(2_000, min(limit, 5 * 1024 * 1024 - 100_000))
    make = crd if big or rng.random() < 0.3 else deployment
    parts, size = [], 0
    while size < limit:
        p = make(i)
        parts.append(p)
        size += len(p)
    text = "".join(parts)
    name = f"{'crd' if make is crd else 'deploy'}-{i:04}-{w()}.yaml"
    with open(os.path.join(root, "templates", name), "w") as f:
        f.write(text)
    total += len(text)

with open(os.path.join(root, "templates", "_helpers.tpl"), "w") as f:
    f.write('{{- define "big.fullname" -}}{{ .Release.Name }}-big{{- end }}\n'
            '{{- define "big.labels" -}}app: big{{- end }}\n'
            '{{- define "big.selectorLabels" -}}app: big{{- end }}\n'
            '{{- define "big.serviceAccountName" -}}big{{- end }}\n')
with open(os.path.join(root, "values.yaml"), "w") as f:
    f.write("image:\n  repository: example.com/big\n  tag: \"\"\n  pullPolicy: IfNotPresent\n")
with open(os.path.join(root, "Chart.yaml"), "w") as f:
    f.write("apiVersion: v2\nname: big\ndescription: A generated chart for bench/cache.sh\n"
            "type: application\nversion: 1.0.0\nappVersion: \"1.0.0\"\n")
PY
chart_bytes=$(du -sb "$chart" | cut -f1)
chart_files=$(find "$chart" -type f | wc -l)
largest=$(find "$chart" -type f -printf '%s\n' | sort -n | tail -n1)
tar -czf "$work/probe.tgz" -C "$work/gen" big
gz_ratio=$(ratio "$chart_bytes" "$(stat -c %s "$work/probe.tgz")")

save_home="$work/save-home"
t_save=$(median_time save "rm -rf '$save_home'" \
  "'$bin' --home '$save_home' -q chart save '$chart' localhost:5000/bench/big:1.0.0")
t_tar=$(median_time tar "rm -f '$work/out.tgz'" \
  "tar -czf '$work/out.tgz' -C '$work/gen' big && sha256sum '$work/out.tgz' >/dev/null")
"$bin" --home "$save_home" chart verify >/dev/null
content_bytes=$(stat -L -c %s "$save_home/registry/refs/localhost_5000/bench/big/tags/1.0.0/content")

# --- generated caches ---------------------------------------------------------------------------
# gen_cache HOME N: a cache of N refs: one chart saved for real, the other N-1 refs written
# directly by the script below, which mirrors what the store writes (src/store/refs.rs and
# layout.rs): refs/<host_port>/<repo…>/tags/<tag>/{chart,content,meta,manifest} as relative
# symlinks, and one index.json entry per ref, sorted by name, as a rebuild writes it. Direct,
# because that is the fastest honest way to a cache of 100,000 refs (a `chart tag` process per
# ref costs a process start each: minutes in all). `chartcache chart verify` then checks that
# the generated cache is one the store accepts.
gen_cache() {
  local home=$1 n=$2
  "$bin" --home "$home" -q chart save "$root/testdata/charts/simple" localhost:5000/bench/seed/simple:0.1.0
  python3 - "$home/registry" "$((n - 1))" <<'PY'
import json, os, sys

reg, n = sys.argv[1], int(sys.argv[2])
seed_dir = os.path.join(reg, "refs/localhost_5000/bench/seed/simple/tags/0.1.0")
# Each link target, relative to the cache root (strip the tag dir's "../" prefix).
links = {name: os.readlink(os.path.join(seed_dir, name)).replace("../", "")
         for name in sorted(os.listdir(seed_dir))}
with open(os.path.join(reg, "index.json")) as f:
    index = json.load(f)
template = index["manifests"][0]
entries = list(index["manifests"])
# Repositories of 100 tags, ten to a team: localhost:5000/bench/team-XX/chart-YYYY:1.0.Z
per = 100
for i in range(n):
    r, t = divmod(i, per)
    repo = f"bench/team-{r % 10:02}/chart-{r:04}"
    d = os.path.join(reg, "refs/localhost_5000", repo, "tags", f"1.0.{t}")
    up = "../" * (repo.count("/") + 1 + 4)
    os.makedirs(d)
    for name, target in links.items():
        os.symlink(up + target, os.path.join(d, name))
    e = json.loads(json.dumps(template))
    e["annotations"]["org.opencontainers.image.ref.name"] = f"localhost:5000/{repo}:1.0.{t}"
    entries.append(e)
entries.sort(key=lambda e: e["annotations"]["org.opencontainers.image.ref.name"])
index["manifests"] = entries
with open(os.path.join(reg, "index.json"), "w") as f:
    json.dump(index, f, separators=(",", ":"))
PY
  "$bin" --home "$home" chart verify >/dev/null || {
    echo "bench/cache.sh: the generated cache at $home does not verify" >&2
    "$bin" --home "$home" chart verify | head >&2
    exit 1
  }
}

# --- 2. list: 10,000 refs ---------------------------------------------------------------------
refs_n=10000
list_home="$work/list-home"
gen_cache "$list_home" "$((refs_n + 1))"
listed=$("$bin" --home "$list_home" chart list -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[[ "$listed" == $((refs_n + 1)) ]] || { echo "bench/cache.sh: chart list shows $listed refs, expected $((refs_n + 1))" >&2; exit 1; }

t_list=$(median_time list "" "'$bin' --home '$list_home' chart list >/dev/null")
t_find=$(median_time find "" "find '$list_home/registry/refs' -type l >/dev/null")

# --- 3. tag: one ref into a cache of 100 and into one of 100,000 ----------------------------------
# args WHAT I: the arguments of the I-th command of a kind.
args() {
  case $1 in
    # A new ref.
    tag) echo "chart tag localhost:5000/bench/seed/simple:0.1.0 localhost:5000/bench/tagged/simple:t$2" ;;
    # An existing ref moved to another chart (its index entry replaced).
    moved) echo "chart tag localhost:5000/bench/other/with-helmignore:0.1.0 localhost:5000/bench/team-00/chart-0000:1.0.$(($2 % 99))" ;;
    # The refs `tag` added.
    remove) echo "chart remove localhost:5000/bench/tagged/simple:t$2" ;;
    start) echo "--version" ;;
    true) echo "" ;;
  esac
}
# per_command_ms HOME WHAT [PROGRAM]: "WALL CPU", milliseconds per command (wall clock, and
# user+system time of the process) over $tag_n runs of `chartcache --home HOME $(args WHAT I)`
# (or of PROGRAM, with no arguments), one process each, one after the other, started by
# python. CPU time is the figure to trust on a busy machine.
per_command_ms() {
  local home=$1 what=$2 program=${3:-} i
  for i in $(seq "$tag_n"); do args "$what" "$i"; done | python3 -c '
import os, subprocess, sys, time
bin, home = sys.argv[1], sys.argv[2]
lines = sys.stdin.read().splitlines()
cpu0 = os.times()
t0 = time.perf_counter()
for line in lines:
    argv = [bin, "--home", home, "-q", *line.split()] if home else [bin]
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
wall = time.perf_counter() - t0
cpu1 = os.times()
cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
print("%.2f %.2f" % (wall * 1000 / len(lines), cpu * 1000 / len(lines)))
' "${program:-$bin}" "$home"
}
declare -A tag_ms tag_cpu
for size in 100 100000; do
  home="$work/tag-$size"
  gen_cache "$home" "$size"
  "$bin" --home "$home" -q chart save "$root/testdata/charts/with-helmignore" localhost:5000/bench/other/with-helmignore:0.1.0
  # Untimed: the first write into an index this version did not write sorts it once; and
  # the generator's writes reach the disk before the clock starts.
  "$bin" --home "$home" -q chart tag localhost:5000/bench/seed/simple:0.1.0 localhost:5000/bench/warm/simple:1
  sync
  for what in tag moved remove; do
    read -r wall cpu < <(per_command_ms "$home" "$what")
    tag_ms[$what-$size]=$wall
    tag_cpu[$what-$size]=$cpu
  done
  "$bin" --home "$home" chart verify >/dev/null
  [[ "$("$bin" --home "$home" chart list localhost:5000/bench/tagged -o json)" == "[]" ]] || {
    echo "bench/cache.sh: chart remove left refs behind in $home" >&2
    exit 1
  }
  rm -rf "$home"
done
read -r start_ms start_cpu < <(per_command_ms "$work" start)
# What starting any process costs here: `true`, which does nothing.
read -r true_ms true_cpu < <(per_command_ms "" true "$(command -v true)")

cat <<EOF

chartcache cache benchmark ($runs runs each, median, $timer; $(nproc) cores; scratch on $(df -T "$work" | awk 'NR==2 {print $2}'))
  chart: $chart_files files, $((chart_bytes / 1024 / 1024)) MiB (largest file $((largest / 1024)) KiB), gzip ratio ${gz_ratio}x, chart blob $((content_bytes / 1024)) KiB
  save  chartcache chart save   ${t_save} s   tar -czf + sha256sum   ${t_tar} s   ratio $(ratio "$t_save" "$t_tar")x  (goal <= 1.20x)
  list  chartcache chart list   ${t_list} s   find refs -type l      ${t_find} s   ratio $(ratio "$t_list" "$t_find")x  (goal <= 3.00x)
        ($((refs_n + 1)) refs)
  tag   ms per command, $tag_n each, process start included (chartcache --version: ${start_ms} ms,
        cpu ${start_cpu} ms; \`true\`: ${true_ms} ms, cpu ${true_cpu} ms)
                                 100 refs        100,000 refs    ratio (wall, cpu)
EOF
for what in tag moved remove; do
  case $what in
    tag) label="chart tag (a new ref)"; goal="(goal <= 2 ms, <= 1.20x)" ;;
    moved) label="chart tag (moved)    "; goal="(goal <= 1.20x)" ;;
    remove) label="chart remove         "; goal="(goal <= 1.20x)" ;;
  esac
  printf '        %s  %6s cpu %5s  %6s cpu %5s  %sx %sx  %s\n' "$label" \
    "${tag_ms[$what-100]}" "${tag_cpu[$what-100]}" "${tag_ms[$what-100000]}" "${tag_cpu[$what-100000]}" \
    "$(ratio "${tag_ms[$what-100000]}" "${tag_ms[$what-100]}")" \
    "$(ratio "${tag_cpu[$what-100000]}" "${tag_cpu[$what-100]}")" "$goal"
done
