# Shared by the bench/*.sh scripts (sourced, not run). Before sourcing, a script sets `work`
# (its scratch directory); the helpers fill `pids` with what they start, and the EXIT trap
# set here stops those and removes `work` (unless KEEP=1).

pids=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ "${KEEP:-0}" == 1 ]] || rm -rf "$work"
}
trap bench_cleanup EXIT

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_http URL: waits (10 s at most) until URL answers 2xx.
wait_http() {
  for _ in $(seq 100); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$(basename "$0"): $1 did not come up" >&2
  exit 1
}

# start_registry NAME: starts a CNCF distribution registry storing under $work/NAME-storage;
# sets `started` (its host:port) and `started_pid`. Not used in a subshell, which would lose
# the pid and leave the registry running after the script.
start_registry() {
  local name=$1 port
  port=$(free_port)
  cat >"$work/$name.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $work/$name-storage}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port, secret: bench}
YML
  docker-registry serve "$work/$name.yml" >"$work/$name.log" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
  started="127.0.0.1:$port"
  wait_http "http://$started/v2/"
}

# ratio A B: A / B with two decimals.
ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }

# timed_cpu FILE COMMAND...: appends "WALL CPU" (seconds) of COMMAND to FILE; the command's
# stderr goes to $work/last.err, shown if it fails. median_col FILE [COLUMN]: the median of a
# column (1: wall, 2: CPU). ms SECONDS: in milliseconds.
timed_cpu() { # FILE COMMAND...: appends "WALL CPU" of COMMAND in seconds (output discarded)
  local out=$1
  shift
  python3 -c '
import resource, subprocess, sys, time
def cpu():  # of the children waited for (before python, a launcher may have had some)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime
before = cpu()
start = time.perf_counter()
with open(sys.argv[1], "w") as err:
    code = subprocess.call(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err)
wall = time.perf_counter() - start
print("%.6f %.6f" % (wall, cpu() - before))
sys.exit(code)' "$work/last.err" "$@" >>"$out" \
    || { echo "$(basename "$0"): failed: $*" >&2; cat "$work/last.err" >&2; exit 1; }
}
median_col() { # FILE [COLUMN]: the median of a column (1: wall, 2: CPU)
  python3 -c 'import statistics,sys; print("%.4f" % statistics.median(float(l.split()[int(sys.argv[2]) - 1]) for l in open(sys.argv[1])))' "$1" "${2:-1}"
}
ms() { python3 -c 'import sys; print("%.1f" % (1000 * float(sys.argv[1])))' "$1"; }
