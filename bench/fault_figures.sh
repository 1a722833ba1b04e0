#!/usr/bin/env bash
# The RELIABILITY.md figure table from one pass of the fault tests.
#
#   bench/fault_figures.sh [OUT_FILE]
#
# Builds the fault tests (tests/integration/test_faults.c and every
# test_faults_*.c; test_faults_process.c spawns the council-host built
# with them) under each sanitizer pass (PASSES, default
# "address,undefined thread": ASan+UBSan+LSan, then TSan), runs each once
# with one engine loop and once with three (COUNCIL_LOOP_THREADS=3), every
# case writing its history into a directory given by COUNCIL_HISTORY_DIR,
# then checks every history with check_history --figures
# (tests/support/check_history.h) and prints the table in markdown, with
# the sanitizer findings (report headers found in the tests' output: each
# also fails its case, since the build stops at the first finding) and the
# seed (COUNCIL_SEED, random unless given; every case that draws random
# numbers records it in its history).  The table goes to stdout, and to
# OUT_FILE if given.  Exit 1 if a test failed, the checker found a
# violation or a sanitizer reported anything.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-}"
passes="${PASSES:-address,undefined thread}"
seed="${COUNCIL_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
export COUNCIL_SEED="$seed"
scripts/deps
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:${TSAN_OPTIONS:-}"

checker=""
failed_cases=0
passed_cases=0
declare -A found=([ASan]=0 [UBSan]=0 [LSan]=0 [TSan]=0)
pass_lines=()
for san in $passes; do
  dir="build-test-clang-${san//,/-}"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang \
        -DCMAKE_BUILD_TYPE=Debug -DCOUNCIL_SANITIZE="$san" >/dev/null
  tests=$(for f in tests/integration/test_faults*.c; do basename "$f" .c; done)
  # shellcheck disable=SC2086
  cmake --build "$dir" -j2 --target check_history council_host council_cli \
        $tests >/dev/null
  # The process fault tests spawn this build's host program, and the
  # command-line ones its council binary (CTest sets the same variables).
  export COUNCIL_HOST_PROGRAM="$PWD/$dir/council-host"
  export COUNCIL_BIN="$PWD/$dir/council"
  [ -n "$checker" ] || checker="$dir/check_history"
  mult=1
  [ "$san" = thread ] && mult=4
  for t in $tests; do
    for loops in 1 3; do
      hd="$work/hist-${san//,/-}-loops$loops"
      log="$work/log-${san//,/-}-$t-loops$loops"
      mkdir -p "$hd"
      start=$(date +%s)
      if COUNCIL_HISTORY_DIR="$hd" COUNCIL_LOOP_THREADS=$loops \
         COUNCIL_TEST_TIMEOUT_MULTIPLIER=$mult timeout 1800 "$dir/$t" >"$log" 2>&1; then
        :
      fi
      p=$(grep -c '^ok - ' "$log" || true)
      f=$(grep -c '^not ok - ' "$log" || true)
      passed_cases=$((passed_cases + p))
      failed_cases=$((failed_cases + f))
      pass_lines+=("$t, $san, $loops loop(s): $p passed, $f failed, $(( $(date +%s) - start )) s")
      found[ASan]=$(( found[ASan] + $(grep -c 'ERROR: AddressSanitizer' "$log" || true) ))
      found[LSan]=$(( found[LSan] + $(grep -c 'ERROR: LeakSanitizer' "$log" || true) ))
      found[UBSan]=$(( found[UBSan] + $(grep -c 'runtime error:' "$log" || true) ))
      found[TSan]=$(( found[TSan] + $(grep -c 'WARNING: ThreadSanitizer' "$log" || true) ))
      grep '^not ok - ' "$log" >&2 || true
    done
  done
done

status=0
"$checker" --figures --quiet "$work"/hist-* >"$work/table" || status=1
total_findings=$(( found[ASan] + found[UBSan] + found[LSan] + found[TSan] ))
{
  echo "# Fault figures, $(date -u +%F)"
  echo
  echo "One pass of \`bench/fault_figures.sh\` at $(date -u +%H:%M) UTC on $(nproc) CPUs,"
  echo "$(git log -1 --format='%h ("%s")'), clang $(clang -dumpversion) Debug builds:"
  echo "passes ${passes// / and }, each with 1 and 3 engine loops."
  for l in "${pass_lines[@]}"; do echo "- $l"; done
  echo
  cat "$work/table"
  echo "| fault test cases passed / failed | $passed_cases / $failed_cases | all / 0 |"
  echo "| sanitizer findings (ASan, UBSan, TSan, LSan leaks): report headers in the tests' output | ${found[ASan]}, ${found[UBSan]}, ${found[TSan]}, ${found[LSan]} | 0 |"
  echo "| COUNCIL_SEED of this pass | $seed | listed |"
  echo
  echo "Not covered by this pass: allocation and syscall faults (F1, F2: their own"
  echo "tests), provider faults (F3), Redis workers (F6, F7), signals to \`council run\`"
  echo "and \`council serve\`, fuzzing, coverage and soak; their rows join the table as"
  echo "their tests write histories."
} >"$work/report"
cat "$work/report"
[ -n "$out" ] && cp "$work/report" "$out"
[ "$failed_cases" -eq 0 ] && [ "$total_findings" -eq 0 ] || status=1
exit $status
