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
