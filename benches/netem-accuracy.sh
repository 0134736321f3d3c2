#!/usr/bin/env bash
# Accuracy benchmark of the netem link emulator: the one command that reproduces benches/RESULTS.md.
#
#   benches/netem-accuracy.sh [--secs N] [--no-tbf] [--no-netem]
#
# 1. Builds once: target/release/prober and the netem_accuracy bench (release).
# 2. Runs `netem_accuracy all`: throughput, added delay and loss through the real `prober proxy`
#    binary, on 127.0.0.1 only.
# 3. As root with ip and tc: creates two network namespaces joined by a veth pair (10.213.77.0/30,
#    addresses exist only inside those namespaces), shapes the server side with the kernel's tbf
#    qdisc at the same rates and runs the same download across it. The namespaces are always
#    removed on exit. Skipped, with a message, when not root or ip/tc are missing.
# 4. Prints everything as markdown on stdout (progress goes to stderr). About 2 minutes plus build.
#
# --secs N   measured window of each throughput run, seconds (default 4; the jitter run uses 2N)
# --no-tbf   skip the kernel tbf comparison
# --no-netem skip the prober proxy measurements (kernel tbf only)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

args=("$@")
secs=4
want_tbf=1
want_netem=1
while (($#)); do
    case "$1" in
        --secs)
            secs=${2:?--secs needs a value}
            shift 2
            ;;
        --no-tbf)
            want_tbf=0
            shift
            ;;
        --no-netem)
            want_netem=0
            shift
            ;;
        -h | --help)
            sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $1 (try --help)" >&2
            exit 2
            ;;
    esac
done

readonly SRV_ADDR=10.213.77.1 CLI_ADDR=10.213.77.2 PORT=5201
readonly VETH_SRV=snp-tbf-s VETH_CLI=snp-tbf-c
# Locally administered MACs, so the script can pin the neighbour entries (no ARP on the shaped link).
readonly MAC_SRV=02:00:0a:d5:4d:01 MAC_CLI=02:00:0a:d5:4d:02

log() { printf '[netem-accuracy.sh] %s\n' "$*" >&2; }

work=$(mktemp -d)
ns_srv=""
ns_cli=""
srv_pid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $srv_pid ]]; then
        kill "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
    fi
    # Deleting a namespace also deletes the veth end inside it (and so its peer).
    for ns in "$ns_cli" "$ns_srv"; do
        if [[ -n $ns ]]; then
            ip netns del "$ns" 2>/dev/null || log "could not delete namespace $ns"
        fi
    done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS

# --- 1. build once ---
log "building target/release/prober and the netem_accuracy bench (release)"
cargo build --release -p prober --bin prober >&2
cargo bench --no-run --bench netem_accuracy >&2
bench=$(cargo bench --no-run --bench netem_accuracy --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*netem_accuracy[^"]*"' | tail -n 1 | cut -d'"' -f4)
if [[ -z $bench || ! -x $bench ]]; then
    echo "error: could not find the netem_accuracy bench executable" >&2
    exit 1
fi
prober=target/release/prober

# --- header ---
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//' || true)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- netem prober 2>/dev/null; then
    rev="$rev, with uncommitted changes in netem/ or prober/"
fi
echo "# netem accuracy benchmark"
echo
echo "- command: \`benches/netem-accuracy.sh${args[*]:+ ${args[*]}}\`"
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) vCPU${cpu:+, $cpu}, Linux $(uname -r)"
echo "- code: $rev; $(rustc --version)"
echo "- load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine adds timer noise)"
echo

# --- 2. everything through prober proxy on 127.0.0.1 ---
touch "$work/netem.tsv"
if ((want_netem)); then
    log "running $bench all (through $prober on 127.0.0.1)"
    timeout 900 "$bench" all --prober "$prober" --secs "$secs" --record "$work/netem.tsv"
fi

# --- 3. the kernel's tbf as a peer ---
skip=""
if ((want_tbf == 0)); then
    skip="--no-tbf given"
elif ((EUID != 0)); then
    skip="not running as root (network namespaces and tc need it)"
elif ! command -v ip >/dev/null 2>&1; then
    skip="\`ip\` (iproute2) not found"
elif ! command -v tc >/dev/null 2>&1; then
    skip="\`tc\` not found"
fi

if [[ -z $skip ]]; then
    ns_srv="snp-tbf-srv-$$"
    if ! ip netns add "$ns_srv" 2>"$work/err"; then
        skip="cannot create a network namespace: $(tr '\n' ' ' <"$work/err")"
        ns_srv=""
    fi
fi

if [[ -z $skip ]]; then
    ns_cli="snp-tbf-cli-$$"
    ip netns add "$ns_cli"
    for ns in "$ns_srv" "$ns_cli"; do
        # Only the measured TCP flow may use the shaped link: no IPv6 (router solicitations, MLD
        # reports and DAD would take link time) and no TCP timestamps (MSS = 1500 − 40 = 1460, the
        # segments netem assumes).
        ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
            echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
            echo 0 > /proc/sys/net/ipv4/tcp_timestamps'
        ip -n "$ns" link set lo up
    done
    # The veth pair is created inside the server namespace with its peer moved straight into the
    # client namespace: nothing is added to the host's own network namespace.
    ip -n "$ns_srv" link add "$VETH_SRV" address "$MAC_SRV" type veth peer name "$VETH_CLI" address "$MAC_CLI" \
        netns "$ns_cli"
    ip -n "$ns_srv" addr add "$SRV_ADDR/30" dev "$VETH_SRV"
    ip -n "$ns_cli" addr add "$CLI_ADDR/30" dev "$VETH_CLI"
    ip -n "$ns_srv" neigh replace "$CLI_ADDR" lladdr "$MAC_CLI" dev "$VETH_SRV" nud permanent
    ip -n "$ns_cli" neigh replace "$SRV_ADDR" lladdr "$MAC_SRV" dev "$VETH_CLI" nud permanent
    ip -n "$ns_srv" link set "$VETH_SRV" up
    ip -n "$ns_cli" link set "$VETH_CLI" up
    if ! ip netns exec "$ns_srv" tc qdisc add dev "$VETH_SRV" root tbf rate 1mbit burst 3028 limit 65536 \
        2>"$work/err"; then
        skip="the tbf qdisc is not available: $(tr '\n' ' ' <"$work/err")"
    else
        ip netns exec "$ns_srv" tc qdisc del dev "$VETH_SRV" root
    fi
fi

if [[ -n $skip ]]; then
    log "skipping the kernel tbf comparison: $skip"
    echo "### 4. Kernel tbf comparison: skipped ($skip)"
    echo
else
    # Linux never lets its RTO fall below 200 ms, but one 1514 B frame takes 242 ms at 50 kbit/s: the
    # first ACK arrives after the RTO and the sender retransmits data that is still queued in tbf,
    # which then eats link time. A per-route rto_min of 1 s keeps TCP from measuring itself.
    ip -n "$ns_srv" route replace "${SRV_ADDR%.*}.0/30" dev "$VETH_SRV" proto kernel scope link src "$SRV_ADDR" \
        rto_min 1s
    log "kernel tbf: namespaces $ns_srv / $ns_cli, veth $SRV_ADDR <-> $CLI_ADDR"
    ip netns exec "$ns_srv" "$bench" serve --listen "$SRV_ADDR:$PORT" --max-secs 600 &
    srv_pid=$!
    echo "### 4. Kernel tbf across a veth pair between two network namespaces (same download, same window)"
    echo
    echo "\`tc qdisc add dev $VETH_SRV root tbf rate Rkbit burst B limit 4194304\` on the server's veth egress, with"
    echo "B = max(3028 B, 2 ms at R) unless noted; the 4 MiB queue (= tcp_limit_output_bytes) never overflows, so"
    echo "TCP sends no duplicates. TCP timestamps off (MSS 1460), IPv6 off, static neighbours, route rto_min 1 s"
    echo "(see RESULTS.md), so the only traffic on the link is the measured download."
    echo "tbf counts whole Ethernet frames, payload + 54 B (14 Ethernet + 20 IP + 20 TCP) per segment:"
    echo "its own byte counter is in the last column of §5."
    echo
    header=--header
    # rate kbit/s and tbf burst bytes (0: the default above)
    for run in "50 0" "400 0" "1600 0" "17000 0" "17000 1514"; do
        read -r r burst <<<"$run"
        label="kernel tbf (veth)"
        if ((burst == 0)); then
            burst=$((r * 1000 / 8 / 500))
            if ((burst < 3028)); then burst=3028; fi
        else
            label="kernel tbf, burst $burst B (one frame)"
        fi
        ip netns exec "$ns_srv" tc qdisc replace dev "$VETH_SRV" root tbf rate "${r}kbit" burst "$burst" \
            limit 4194304
        log "kernel tbf: $r kbit/s, burst $burst B"
        timeout 300 ip netns exec "$ns_cli" "$bench" fetch --addr "$SRV_ADDR:$PORT" --kbps "$r" --secs "$secs" \
            --overhead-bytes 54 --label "$label" --accounting "L2: +54 B/seg" $header --record "$work/tbf.tsv"
        header=
        stats=$(ip netns exec "$ns_srv" tc -s qdisc show dev "$VETH_SRV")
        sent=$(grep -o 'Sent [0-9]* bytes [0-9]* pkt' <<<"$stats" | head -n 1 | cut -d' ' -f2,4)
        drops=$(grep -o 'dropped [0-9]*' <<<"$stats" | head -n 1 | cut -d' ' -f2)
        printf '%s\t%s\t%s\t%s\n' "$label" "$r" "${sent/ /$'\t'}" "${drops:-?}" >>"$work/tbfstats.tsv"
        ip netns exec "$ns_srv" tc qdisc del dev "$VETH_SRV" root
    done
    echo
fi

# --- 5. side by side ---
echo "### 5. Throughput side by side (error of the achieved wire rate vs the configured rate)"
echo
echo "| rate kbit/s | shaper | wire kbit/s | **error** | accounting | same goodput counted the other way | shaper's own byte counter: (sent − payload) / packets | drops |"
echo "|---:|---|---:|---:|---|---:|---:|---:|"
tbf_tsv=/dev/null
stats_tsv=/dev/null
if [[ -f $work/tbf.tsv ]]; then tbf_tsv=$work/tbf.tsv; fi
if [[ -f $work/tbfstats.tsv ]]; then stats_tsv=$work/tbfstats.tsv; fi
# netem.tsv / tbf.tsv: label, rate, wire, error %, goodput, [payload]; tbfstats.tsv: label, rate, bytes, pkts,
# drops.
awk -F'\t' -v stats="$stats_tsv" '
    BEGIN {
        while ((getline line < stats) > 0) {
            split(line, f, "\t")
            sent[f[1], f[2] + 0] = f[3]
            pkts[f[1], f[2] + 0] = f[4]
            drops[f[1], f[2] + 0] = f[5]
        }
    }
    FILENAME ~ /netem.tsv$/ {
        printf "| %s | netem via prober proxy | %.2f | **%+.3f %%** | L3 (+40 B/seg) | L2: %+.3f %% | n/a | n/a |\n",
            $2, $3, $4, ($5 * 1514 / 1460 / $2 - 1) * 100
    }
    FILENAME !~ /netem.tsv$/ {
        k = $1 SUBSEP ($2 + 0)
        per = (k in sent) ? sprintf("%.1f B (%d pkts)", (sent[k] - $6) / pkts[k], pkts[k]) : "?"
        printf "| %s | %s | %.2f | **%+.3f %%** | L2 (+54 B/seg) | L3: %+.3f %% | %s | %s |\n",
            $2, $1, $3, $4, ($5 * 1500 / 1460 / $2 - 1) * 100, per, (k in drops) ? drops[k] : "?"
    }
' "$work/netem.tsv" "$tbf_tsv" | sort -t'|' -k2,2n -s
echo
echo "_load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)_"
echo
log "finished in $((SECONDS - started)) s"
