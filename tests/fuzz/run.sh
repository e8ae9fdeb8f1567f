#!/usr/bin/env bash
# Run libFuzzer targets (tests/fuzz/README.md). Usage: run.sh SECONDS JOBS WORKDIR TARGET...
#   Each target runs for SECONDS on a working corpus in WORKDIR/<target> (new inputs land there) plus the
#   committed seeds in tests/fuzz/corpus/<target> (read only), JOBS targets at a time. A crash, leak,
#   sanitizer report, timeout (25 s for one input) or out-of-memory leaves its input in
#   tests/fuzz/crashes/<target>-* and makes the run fail. Exit status 85 from a target means skipped (libFuzzer itself exits with 77 on a crash).
#   Prints one summary line per target from libFuzzer's final stats (-print_final_stats=1).
set -u
secs=$1 jobs=$2 work=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/crashes" "$work/logs"
run_one() {
    local t=$1 log="$work/logs/$1.log"
    mkdir -p "$work/$t" "$here/corpus/$t"
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$here/bin/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 -timeout=25 -rss_limit_mb=2560 \
        -artifact_prefix="$here/crashes/$t-" "$work/$t" "$here/corpus/$t" >"$log" 2>&1
    echo $? >"$work/logs/$t.rc"
}
running=0
for t in "$@"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
fail=0
for t in "$@"; do
    log="$work/logs/$t.log"
    rc=$(cat "$work/logs/$t.rc" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|pulse|NEW|REDUCE)' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov: \1 ft: \2 corp: \3/p')
    if [ "$rc" = 85 ] && grep -q "SKIP:" "$log"; then
        printf 'fuzz %-12s SKIPPED: %s\n' "$t" "$(grep -m1 SKIP "$log")"
        continue
    fi
    status=ok
    if [ "$rc" != 0 ]; then
        status="FAILED (exit $rc; log $log)"
        fail=1
    fi
    printf 'fuzz %-12s %ss  execs: %s (%s/s)  %s  %s\n' "$t" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}" "$status"
    if [ "$rc" != 0 ]; then
        grep -E 'check failed|ERROR: |SUMMARY: |Test unit written|runtime error' "$log" | head -8 | sed 's/^/    /'
    fi
done
exit $fail
