#!/bin/sh
# SPDX-License-Identifier: MIT
# Run one fuzz target for a while, single job, then merge what it found into
# the committed corpus (only inputs that add coverage are kept).
#   fuzz/run.sh TARGET [SECONDS] [BUILD_DIR]
# TARGET is the name without "fuzz_" (sse, council_yaml, ...).  Crashes are
# written to BUILD_DIR/fuzz-work/crash-* (see fuzz/README.md).
set -eu
t=$1
secs=${2:-60}
build=${3:-build-fuzz}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/fuzz_$t
work=$build/fuzz-work/$t
mkdir -p "$work"
dict=""
case $t in
council_yaml) dict="-dict=$here/council.dict" ;;
openai_chunk | json_fast) dict="-dict=$here/openai.dict" ;;
anthropic_event) dict="-dict=$here/anthropic.dict" ;;
http_request) dict="-dict=$here/http.dict" ;;
openai_compat_body) dict="-dict=$here/chat_request.dict" ;;
esac
status=0
# A known leak inside libfyaml (see lsan.supp).
LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$here/lsan.supp
export LSAN_OPTIONS
# shellcheck disable=SC2086
"$bin" $dict -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-work/" "$work" "$here/corpus/$t" || status=$?
"$bin" -merge=1 "$here/corpus/$t" "$work" >/dev/null 2>&1
exit $status
