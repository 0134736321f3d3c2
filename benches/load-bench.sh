#!/usr/bin/env bash
# Benchmark of `prober load` against oha and wrk, on loopback only.
#
#   benches/load-bench.sh [--secs N] [--total N] [--no-oha]
#
# 1. Builds once (release): target/release/prober and the example load_bench_server (a bare hyper
#    HTTP/1.1 server on one thread).
# 2. Starts the server pinned to CPU 0 (`taskset -c 0`); every load tool runs on CPU 1.
# 3. Throughput, same run: `prober load --url … --rate max -c 50`, `oha -z Ns -c 50` and
#    `wrk -t1 -c50 -dNs`, one after another, each for N seconds (default 10). Requests per
#    CPU-second = requests / (user + system CPU time of the tool, from /usr/bin/time).
# 4. Open model accuracy: `prober load --rate R -d 10s` at 1k, 10k and 50k/s: the rate of started
#    arrivals between the first and last start vs R, and the p99 of send lateness (actual − intended).
# 5. Memory: RSS (max resident, /usr/bin/time) after --total requests at --rate max (default 10
#    million, a bounded run: `-n`).
# The machine's load average is printed beside each part: on a shared machine, compare figures
# only at a low load. Markdown on stdout, progress on stderr.
#
# Tools: wrk from Debian (`apt-get install -y wrk`, done here when missing). oha is a Rust crate:
# the script uses $OHA, else `oha` on PATH, else target/bench-tools/bin/oha, else builds it from
# source with `cargo install oha --locked --root target/bench-tools` (a few minutes, once; no
# prebuilt binary is downloaded). --no-oha skips it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secs=10
total=10000000
want_oha=1
while (($#)); do
    case "$1" in
        --secs) secs=${2:?}; shift 2 ;;
        --total) total=${2:?}; shift 2 ;;
        --no-oha) want_oha=0; shift ;;
        -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { printf '[load-bench.sh] %s\n' "$*" >&2; }
work=$(mktemp -d)
srv_pid=""
cleanup() {
    if [[ -n $srv_pid ]]; then kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

target=${CARGO_TARGET_DIR:-target}
log "building (release)"
cargo build --release -p prober --bin prober --example load_bench_server >&2
prober=$target/release/prober
server=$target/release/examples/load_bench_server

command -v wrk >/dev/null || { log "installing wrk (apt-get)"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2; }
oha=""
if ((want_oha)); then
    oha=${OHA:-$(command -v oha || true)}
    [[ -z $oha && -x $target/bench-tools/bin/oha ]] && oha=$target/bench-tools/bin/oha
    if [[ -z $oha ]]; then
        log "building oha from source: cargo install oha --locked --root $target/bench-tools"
        cargo install oha --locked --root "$target/bench-tools" >&2
        oha=$target/bench-tools/bin/oha
    fi
fi

taskset -c 0 "$server" --listen 127.0.0.1:0 --max-secs 3600 >"$work/srv.out" &
srv_pid=$!
for _ in $(seq 50); do grep -q listening "$work/srv.out" 2>/dev/null && break; sleep 0.1; done
addr=$(awk '/listening/ {print $2}' "$work/srv.out")
url="http://$addr/"
log "server on $addr (CPU 0)"

# runs "$@" on CPU 1 under /usr/bin/time; leaves "user sys maxrss_kb" in $work/time
timed() { /usr/bin/time -f '%U %S %M' -o "$work/time" taskset -c 1 "$@"; }
cpu() { awk '{printf "%.2f", $1 + $2}' "$work/time"; }
rss() { awk '{printf "%.1f", $3 / 1024}' "$work/time"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

echo "# prober load benchmark"
echo
echo "- command: \`benches/load-bench.sh --secs $secs --total $total$( ((want_oha)) || echo ' --no-oha')\`"
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "- server: load_bench_server (hyper, 1 thread) on CPU 0; tools on CPU 1; loopback"
echo "- load average before: $(loadavg) (1, 5, 15 min)"
echo
echo "## Throughput, keep-alive, 50 connections, ${secs} s (load average $(loadavg))"
echo
echo "| tool | requests | rps | CPU s (user+sys) | **requests per CPU-second** | max RSS MB |"
echo "|---|---:|---:|---:|---:|---:|"
timed "$prober" load --url "$url" --rate max -c 50 -d "${secs}s" -q --json "$work/p.json" >/dev/null
n=$(python3 -c "import json;s=json.load(open('$work/p.json'));print(s['series'][0]['count'], s['elapsed_s'])")
read -r req el <<<"$n"
awk -v r="$req" -v e="$el" -v c="$(cpu)" -v m="$(rss)" 'BEGIN{printf "| prober load --rate max | %d | %.0f | %.2f | **%.0f** | %s |\n", r, r/e, c, r/c, m}'
if [[ -n $oha ]]; then
    timed "$oha" -z "${secs}s" -c 50 --no-tui --output-format json "$url" >"$work/o.json"
    read -r rps tot <<<"$(python3 -c "import json;s=json.load(open('$work/o.json'));print(s['summary']['requestsPerSec'], s['summary']['total'])")"
    req=$(awk -v r="$rps" -v t="$tot" 'BEGIN{printf "%d", r*t}')
    awk -v r="$req" -v e="$tot" -v c="$(cpu)" -v m="$(rss)" -v v="$("$oha" --version | head -1)" 'BEGIN{printf "| %s | %d | %.0f | %.2f | **%.0f** | %s |\n", v, r, r/e, c, r/c, m}'
fi
timed wrk -t1 -c50 -d"${secs}s" "$url" >"$work/w.txt"
req=$(awk '/requests in/ {print $1}' "$work/w.txt")
awk -v r="$req" -v e="$secs" -v c="$(cpu)" -v m="$(rss)" 'BEGIN{printf "| wrk -t1 -c50 | %d | %.0f | %.2f | **%.0f** | %s |\n", r, r/e, c, r/c, m}'
echo
echo "## Open model accuracy, 10 s per rate, 64 connections (load average $(loadavg))"
echo
echo "| rate/s | started | achieved/s | **rate error** | send lateness p50 | **p99** | max | late (>10 ms) | dropped | CPU s |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in 1000 10000 50000; do
    timed "$prober" load --url "$url" --rate "$r" -d 10s -q --json "$work/r.json" >/dev/null || true
    python3 - "$work/r.json" "$r" "$(cpu)" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); r = float(sys.argv[2]); a = s["arrivals"]; l = s.get("send_lateness_ms", {})
ach = s.get("achieved_rate") or 0
print(f"| {r:.0f} | {a['started']} | {ach:.2f} | **{(ach / r - 1) * 100:+.3f} %** | {l.get('p50', 0):.3f} ms | **{l.get('p99', 0):.3f} ms** | {l.get('max', 0):.3f} ms | {a['late']} | {a['dropped']} | {sys.argv[3]} |")
PY
done
echo
echo "## Memory after $total requests (--rate max, 50 connections; load average $(loadavg))"
echo
timed "$prober" load --url "$url" --rate max -c 50 -n "$total" -q --json "$work/m.json" >/dev/null
python3 - "$work/m.json" "$(rss)" "$(cpu)" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{s['series'][0]['count']} requests in {s['elapsed_s']:.1f} s: max RSS **{sys.argv[2]} MB**, CPU {sys.argv[3]} s")
PY
echo
echo "_load average at the end: $(loadavg)_"
