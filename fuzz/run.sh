#!/bin/sh
# SPDX-License-Identifier: MIT
# Run one fuzz target for a while, single job, then merge what it found into
# the committed corpus (only inputs that add coverage are kept).
#   fuzz/run.sh TARGET [SECONDS] [BUILD_DIR]
# TARGET is the name without "fuzz_" (sse, council_yaml, ...).  Crashes are
# written to BUILD_DIR/fuzz-work/crash-* (see fuzz/README.md).
#
# CI: build every target and fuzz each for a short time, two at a time,
# from a scratch copy of its corpus (the committed corpus is left as it
# is); exit 1 if any target finds a crash, a leak or a timeout.
#   fuzz/run.sh --ci [SECONDS] [BUILD_DIR]      (default 30 s, build-fuzz-ci)
# FUZZ_TARGETS="sse ranking" fuzzes only those.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

dict_of() {
    case $1 in
    council_yaml) echo "-dict=$here/council.dict" ;;
    openai_chunk | json_fast) echo "-dict=$here/openai.dict" ;;
    anthropic_event) echo "-dict=$here/anthropic.dict" ;;
    http_request) echo "-dict=$here/http.dict" ;;
    openai_compat_body) echo "-dict=$here/chat_request.dict" ;;
    *) echo "" ;;
    esac
}

# A known leak inside libfyaml (see lsan.supp).
LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$here/lsan.supp
export LSAN_OPTIONS

# One CI pass of target $1 for $2 seconds in build dir $3: 0 if clean.
ci_one() {
    t=$1
    secs=$2
    build=$3
    work=$build/fuzz-ci/$t
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp "$here/corpus/$t/"* "$work/corpus/" 2>/dev/null || true
    # -timeout: one input running 10 s is a finding; -rss_limit_mb: so is
    # one that takes 2 GB (the default).
    # shellcheck disable=SC2046
    if "$build/fuzz_$t" $(dict_of "$t") -max_total_time="$secs" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" \
        >"$work/log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" |
            grep -o '[0-9]*$' || true)
        cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -n 1 || true)
        echo "fuzz $t: ok, $secs s, ${runs:-?} runs, ${cov:-cov: ?}"
        return 0
    fi
    echo "fuzz $t: FINDING (log: $work/log)"
    tail -n 60 "$work/log"
    for f in "$work/artifacts/"*; do
        [ -e "$f" ] || continue
        echo "fuzz $t: input $f (reproduce: $build/fuzz_$t $f;" \
            "then fuzz/README.md, 'A crash found')"
    done
    return 1
}

if [ "${1:-}" = --ci ]; then
    secs=${2:-30}
    build=${3:-build-fuzz-ci}
    cmake -S "$here/.." -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOUNCIL_FUZZ=ON >/dev/null
    # FUZZ_TARGETS="sse ranking" limits the pass to those.
    targets=${FUZZ_TARGETS:-}
    if [ -z "$targets" ]; then
        for src in "$here"/fuzz_*.c; do
            n=$(basename "$src" .c)
            targets="$targets ${n#fuzz_}"
        done
    fi
    # shellcheck disable=SC2046
    cmake --build "$build" -j2 --target $(for t in $targets; do
        printf 'fuzz_%s ' "$t"
    done)
    status=0
    # shellcheck disable=SC2086
    set -- $targets
    # Two at a time (the CI machine has two cores): about SECONDS per pair.
    while [ $# -gt 0 ]; do
        a=$1
        shift
        if [ $# -gt 0 ]; then
            b=$1
            shift
            ci_one "$b" "$secs" "$build" >"$build/fuzz-ci-$b.out" 2>&1 &
            pid=$!
            ci_one "$a" "$secs" "$build" || status=1
            wait "$pid" || status=1
            cat "$build/fuzz-ci-$b.out"
        else
            ci_one "$a" "$secs" "$build" || status=1
        fi
    done
    exit $status
fi

t=$1
secs=${2:-60}
build=${3:-build-fuzz}
bin=$build/fuzz_$t
work=$build/fuzz-work/$t
mkdir -p "$work"
status=0
# shellcheck disable=SC2046
"$bin" $(dict_of "$t") -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-work/" "$work" "$here/corpus/$t" || status=$?
"$bin" -merge=1 "$here/corpus/$t" "$work" >/dev/null 2>&1
exit $status
