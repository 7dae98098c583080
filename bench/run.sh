#!/usr/bin/env bash
# bench/run.sh: HTTP load test of Rally on SQLite against a bare net/http baseline.
# See bench/README.md. Tunables (environment): BENCH_DURATION (10s), BENCH_WARMUP (2s),
# BENCH_CONNECTIONS (64), BENCH_THREADS (1), BENCH_RALLY_PORT (18080), BENCH_BASELINE_PORT (18090),
# BENCH_STRICT=1 to exit 1 when the read target is missed.
set -euo pipefail

duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-2s}
conns=${BENCH_CONNECTIONS:-64}
# One wrk thread drives 64 connections faster than two on a 2-core machine (it leaves a core to the
# server instead of competing for both); see "Load generator threads" in bench/README.md.
threads=${BENCH_THREADS:-1}
rally_port=${BENCH_RALLY_PORT:-18080}
base_port=${BENCH_BASELINE_PORT:-18090}

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$bench_dir/.." && pwd)
lua=$bench_dir/report.lua

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "wrk is missing and apt-get is not available; install wrk"
  [ "$(id -u)" -eq 0 ] || die "wrk is missing; run 'apt-get install -y wrk' as root"
  log "installing wrk (Debian package)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
command -v curl >/dev/null 2>&1 || die "curl is required"
command -v go >/dev/null 2>&1 || die "go is required"

# --- processes and cleanup ---------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rally-bench.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; }
wait_up() { # url, what
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  die "$2 did not come up at $1 (logs in $tmp)"
}
port_free "$rally_port" || die "port $rally_port is in use (set BENCH_RALLY_PORT)"
port_free "$base_port" || die "port $base_port is in use (set BENCH_BASELINE_PORT)"

log "building rally and baseline"
(cd "$root" && go build -o "$tmp/rally" ./cmd/rally && go build -o "$tmp/baseline" ./bench/baseline)

# --- Rally on a fresh SQLite data dir, one community ------------------------------------------
data=$tmp/data
mkdir -p "$data"
created=$("$tmp/rally" community create --name "Bench Club" --uri bench-club --json --data "$data")
community=$(printf '%s' "$created" | tr -d '\n' | sed -n 's/.*"communityId": *"\([^"]*\)".*/\1/p')
api_key=$(printf '%s' "$created" | tr -d '\n' | sed -n 's/.*"apiKey": *"\([^"]*\)".*/\1/p')
[ -n "$community" ] && [ -n "$api_key" ] || die "could not parse 'community create' output: $created"

"$tmp/rally" serve --addr "127.0.0.1:$rally_port" --data "$data" \
  --admin-key-file "$data/admin.key" --access-log=false >"$tmp/rally.log" 2>&1 &
pids+=($!)
rally_pid=$!
wait_up "http://127.0.0.1:$rally_port/healthz" "rally"

read_url=http://127.0.0.1:$rally_port/v1/management/communities/$community
read_size=$(curl -sf -H "Authorization: Bearer $api_key" "$read_url" | wc -c | tr -d ' ')
[ "$read_size" -gt 0 ] || die "Rally read returned an empty body"

"$tmp/baseline" -addr "127.0.0.1:$base_port" -size "$read_size" >"$tmp/baseline.log" 2>&1 &
pids+=($!)
base_pid=$!
wait_up "http://127.0.0.1:$base_port/" "baseline"
base_size=$(curl -sf "http://127.0.0.1:$base_port/" | wc -c | tr -d ' ')
[ "$base_size" -eq "$read_size" ] || die "baseline body is $base_size bytes, Rally's $read_size"
log "read body: $read_size bytes; $conns connections, $threads threads, $duration per scenario (after $warmup warm-up)"

# --- scenarios ---------------------------------------------------------------------------------
declare -A rps p50 p99 reqs errs cpu
# cpu_ticks pid: the process's user+system CPU time in clock ticks ("" without /proc).
cpu_ticks() { [ -r "/proc/$1/stat" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" || true; }
run_wrk() { # name pid url [env...]: warm up, measure, keep the BENCH line and the server's CPU time
  local name=$1 pid=$2 url=$3; shift 3
  env "$@" wrk -t"$threads" -c"$conns" -d"$warmup" -s "$lua" "$url" >/dev/null
  local out line t0 t1
  t0=$(cpu_ticks "$pid")
  out=$(env "$@" wrk -t"$threads" -c"$conns" -d"$duration" --timeout 5s -s "$lua" "$url")
  t1=$(cpu_ticks "$pid")
  line=$(printf '%s\n' "$out" | grep '^BENCH ') || die "no BENCH line from wrk for $name: $out"
  for kv in ${line#BENCH }; do
    case $kv in
      rps=*) rps[$name]=${kv#*=} ;;
      p50_ms=*) p50[$name]=${kv#*=} ;;
      p99_ms=*) p99[$name]=${kv#*=} ;;
      requests=*) reqs[$name]=${kv#*=} ;;
      errors=*) errs[$name]=${kv#*=} ;;
      non2xx=*) errs[$name]=$(( ${errs[$name]} + ${kv#*=} )) ;;
    esac
  done
  cpu[$name]=-
  if [ -n "$t0" ] && [ -n "$t1" ] && [ "${reqs[$name]:-0}" -gt 0 ]; then
    cpu[$name]=$(awk -v a="$t0" -v b="$t1" -v n="${reqs[$name]}" -v hz="$(getconf CLK_TCK)" \
      'BEGIN { printf "%.1f", (b - a) / hz * 1e6 / n }')
  fi
  log "$name: $line server_cpu_us_per_req=${cpu[$name]}"
}

run_wrk baseline "$base_pid" "http://127.0.0.1:$base_port/"
run_wrk rally-read "$rally_pid" "$read_url" BENCH_AUTH="$api_key"
# Name & Uri update; every request sets a new name and uri ("Bench Club <thread>-<n>").
run_wrk rally-write "$rally_pid" "$read_url" BENCH_METHOD=PUT BENCH_AUTH="$api_key" \
  BENCH_BODY='{"name":"Bench Club %d-%d","uri":"bench-club-%d-%d"}'

# --- report ------------------------------------------------------------------------------------
printf '\n%-12s %10s %9s %9s %10s %8s %14s %12s\n' scenario 'req/s' 'p50 ms' 'p99 ms' requests errors 'Rally/baseline' 'CPU us/req'
for name in baseline rally-read rally-write; do
  ratio=$(awk -v a="${rps[$name]}" -v b="${rps[baseline]}" 'BEGIN { printf "%.0f%%", 100 * a / b }')
  [ "$name" = baseline ] && ratio=-
  printf '%-12s %10s %9s %9s %10s %8s %14s %12s\n' "$name" "${rps[$name]}" "${p50[$name]}" "${p99[$name]}" \
    "${reqs[$name]}" "${errs[$name]}" "$ratio" "${cpu[$name]}"
done
printf '\nmachine: %s cores, %s, load average %s; %s connections, %s threads, %s per scenario; read body %s bytes\n' \
  "$(nproc)" "$(uname -sr)" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')" "$conns" "$threads" "$duration" "$read_size"

verdict=$(awk -v r="${rps[rally-read]}" -v b="${rps[baseline]}" -v p="${p99[rally-read]}" 'BEGIN {
  ok = (r >= 0.5 * b) && (p < 10)
  printf "%s: read at %.0f%% of baseline (target >= 50%%), read p99 %.2f ms (target < 10 ms)", ok ? "PASS" : "MISS", 100 * r / b, p
}')
echo "$verdict"
total_errs=$(( ${errs[baseline]} + ${errs[rally-read]} + ${errs[rally-write]} ))
[ "$total_errs" -eq 0 ] || die "$total_errs socket errors or non-2xx answers; see above"
if [ "${BENCH_STRICT:-0}" = 1 ] && [ "${verdict%%:*}" = MISS ]; then exit 1; fi
