#!/usr/bin/env bash
# Determinism of the timing tier: boots the same scenario twice and shows,
# row by row, that the deadline misses of the two boots agree within 1 % of
# the row's transactions (the percentiles are printed beside them).
#
# Usage: bash hil-tests/vtime/determinism.sh [--kernel stock|rt] [-- <vtime-guest args>]
#   default scenario: the timing case's matrix with vhci at FIFO 50 (every
#   load, every contender, 2000 transactions a row: the rows CI judges):
#     --only timing --set timing.other_loads=
#   (pass other vtime-guest arguments after -- to check another scenario).
#   The rows with vhci left at SCHED_OTHER are not deterministic to 1 %:
#   measured, the kernel path's misses under rt-burst came out 98 and 215 in
#   two boots (its usb row 144 and 146): with the interrupt thread competing
#   under CFS, tiny differences between boots grow.
# Exit status: 0 when every row agrees, 1 when one does not, 2 when a boot
# produced no rows or the two boots produced different rows.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KERNEL=stock
ARGS=(--only timing --set timing.other_loads=)
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) KERNEL=${2:?--kernel needs stock or rt}; shift ;;
        --) shift; ARGS=("$@"); break ;;
        *) echo "determinism.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
case "$KERNEL" in stock | rt) ;; *) echo "determinism.sh: --kernel stock or rt" >&2; exit 2 ;; esac

OUT="$HERE/work/determinism"
rm -rf "$OUT"
for run in 1 2; do
    echo "determinism: boot $run of 2 ($KERNEL kernel: ${ARGS[*]})"
    # The boot's own verdict (cases, report gates) is printed but does not
    # stop the comparison: determinism is a property of the rows. A run that
    # never booted (a failed build step) is retried, twice at most.
    for attempt in 1 2 3; do
        rm -rf "${OUT:?}/boot$run"
        mkdir -p "$OUT/boot$run"
        VTIME_OUT="$OUT/boot$run" bash "$HERE/run.sh" --kernel "$KERNEL" -- "${ARGS[@]}" \
            >"$OUT/run$run.log" 2>&1 || echo "determinism: boot $run exited non-zero"
        [ -s "$OUT/boot$run/console-$KERNEL.log" ] && break
        echo "determinism: boot $run did not boot (attempt $attempt; see $OUT/run$run.log)"
    done
    grep -E '^vtime-step: (boot|total)' "$OUT/run$run.log" || true
done

# Rows as "key n misses p50 p90 p99 p999 max", key = kernel/load/path/vhci.
rows() {
    sed -n 's/.*[[:space:]]\(timing kernel=.*\)/\1/p' "$1" | awk '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%s/%s/%s/%s %s %s %s %s %s %s %s\n", v["kernel"], v["load"], v["path"], v["vhci"],
            v["n"], v["misses"], v["p50_us"], v["p90_us"], v["p99_us"], v["p999_us"], v["max_us"]
    }' | sort
}
A=$(rows "$OUT/boot1/console-$KERNEL.log")
B=$(rows "$OUT/boot2/console-$KERNEL.log")
if [ -z "$A" ] || [ -z "$B" ]; then
    echo "determinism: a boot produced no timing rows; see $OUT/run*.log"
    exit 2
fi
if [ "$(cut -d' ' -f1 <<<"$A")" != "$(cut -d' ' -f1 <<<"$B")" ]; then
    echo "determinism: the boots measured different rows"
    diff <(cut -d' ' -f1 <<<"$A") <(cut -d' ' -f1 <<<"$B") || true
    exit 2
fi

join <(echo "$A") <(echo "$B") | awk '
    BEGIN {
        printf "%-34s %6s %13s %7s %-29s %-29s %s\n", "row (kernel/load/path/vhci)", "n",
            "misses 1 / 2", "limit", "p50/p90/p99/p99.9/max 1", "p50/p90/p99/p99.9/max 2", "verdict"
    }
    {
        n = $2; m1 = $3; m2 = $10; d = m1 - m2; if (d < 0) d = -d
        limit = n / 100; ok = (d <= limit)
        bad += !ok
        printf "%-34s %6d %6d / %-6d %7.1f %-29s %-29s %s\n", $1, n, m1, m2, limit,
            $4 "/" $5 "/" $6 "/" $7 "/" $8, $11 "/" $12 "/" $13 "/" $14 "/" $15, ok ? "agree" : "DIFFER"
    }
    END {
        if (bad) { printf "determinism: %d row(s) differ by more than 1 %% of n\n", bad; exit 1 }
        print "determinism: every row agrees within 1 % of n"
    }'
