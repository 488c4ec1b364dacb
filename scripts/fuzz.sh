#!/usr/bin/env bash
# make fuzz: every coverage-guided fuzz target (fuzz/fuzz_targets/*.rs, libFuzzer through
# cargo-fuzz on the stable toolchain, `--sanitizer none`) for FUZZ_SECS seconds each
# (default 600), starting from the corpus kept in fuzz/corpus/<target>/. Builds once,
# then runs the targets one after the other and prints, per target, the executions, the
# final coverage (libFuzzer's `cov:` edges and `ft:` features) and the crashes.
#
#   scripts/fuzz.sh [target...]   only these targets
#   FUZZ_SECS=20                  seconds per target (CI: `make fuzz-smoke`)
#   FUZZ_MERGE=1                  afterwards, merge what the run found into fuzz/corpus/
#                                 (only inputs that add coverage; commit them)
#
# New inputs go to .run/fuzz/<target>/corpus (kept between runs, never committed) and a
# crashing input to .run/fuzz/<target>/artifacts/. Reproduce one with
# `fuzz/target/x86_64-unknown-linux-gnu/release/<target> <file>`. Exits 1 if any target
# crashed. Installs what it lacks (a C++ compiler for libFuzzer, cargo-fuzz) or says
# which command would.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

secs="${FUZZ_SECS:-600}"
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SECS must be a whole number of seconds, got '$secs'"
work="$RUN_DIR/fuzz"
triple="$(rustc -vV | sed -n 's/^host: //p')"
# FUZZ_TARGET_DIR: where the instrumented build goes (default fuzz/target). CI points it
# at a cache outside the clone, so only the first run on a machine pays the cold build.
target_dir="${FUZZ_TARGET_DIR:-fuzz/target}"
bin="$target_dir/$triple/release"

# libfuzzer-sys compiles libFuzzer (C++) with the cc crate.
if ! have c++; then
  if can_apt; then
    say "installing g++ (libFuzzer is C++)"
    apt-get install -y -qq g++ >/dev/null || { apt-get update -qq && apt-get install -y -qq g++ >/dev/null; }
  else
    die "no C++ compiler: run 'apt-get install g++' as root (libfuzzer-sys builds libFuzzer from C++)"
  fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (cargo install, once)"
  cargo install cargo-fuzz --locked ||
    die "could not install cargo-fuzz: run 'cargo install cargo-fuzz --locked' and try again"
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# One build for every target: release with debug assertions (overflow checks on), the
# sancov instrumentation passed as stable -C flags. No sanitizer: that needs nightly, and
# safe Rust gives memory safety anyway; what is hunted is panics and broken properties.
say "building ${#targets[@]} fuzz targets (cargo fuzz build --sanitizer none)"
build_args=()
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || die "no fuzz target '$t' (see fuzz/fuzz_targets/)"
done
[ "$#" -eq 1 ] && build_args=("$1")
cargo fuzz build --fuzz-dir fuzz --sanitizer none --target-dir "$target_dir" "${build_args[@]}"

# merge TARGET SCRATCH LOG: adds to fuzz/corpus/TARGET the fewest inputs of SCRATCH that
# reach edges its files do not (edges only, not hit counts, so the committed corpus grows
# by a handful of files, not thousands); the files already there stay.
merge() {
  local t="$1" scratch="$2" log="$3"
  say "merging what $t reached into fuzz/corpus/$t"
  "$bin/$t" -merge=1 -use_counters=0 "fuzz/corpus/$t" "$scratch" 2>>"$log" >/dev/null
}

summary=()
crashed=0
for t in "${targets[@]}"; do
  corpus="$work/$t/corpus"
  artifacts="$work/$t/artifacts"
  log="$work/$t/fuzz.log"
  mkdir -p "$corpus" "$artifacts" "fuzz/corpus/$t"
  touch "$work/$t/started"
  say "fuzzing $t for ${secs} s"
  status=0
  # The first corpus directory receives new inputs; the committed one is only read.
  "$bin/$t" "$corpus" "fuzz/corpus/$t" \
    -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" 2>"$log" || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
  ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")"
  corp="$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")"
  edges="$(sed -nE 's/^INFO: Loaded [0-9]+ modules +\(([0-9]+) inline 8-bit counters.*/\1/p' "$log" | head -1)"
  crashes="$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) -newer "$work/$t/started" | wc -l)"
  if [ "$status" -ne 0 ]; then
    crashed=1
    [ "$crashes" -gt 0 ] || crashes=1
    warn "$t failed (exit $status); the panic and the input:"
    grep -E -A3 "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -20 >&2 || true
    grep -E "Test unit written to" "$log" >&2 || true
  fi
  summary+=("$(printf '%-14s %12s %9s %7s %7s %7s / %-7s %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${edges:-?}" "$crashes")")
  if [ -n "${FUZZ_MERGE:-}" ] && [ "$status" -eq 0 ]; then
    merge "$t" "$corpus" "$log"
  fi
done

printf '\n%-14s %12s %9s %7s %7s %7s / %-7s %s\n' target executions "exec/s" "cov" "ft" "corpus" "edges" crashes
printf '%s\n' "${summary[@]}"
printf '(cov: edges covered at the end; ft: libFuzzer features; edges: instrumented in the binary, dependencies included; %s s each; logs in %s/<target>/fuzz.log)\n' "$secs" "$work"
exit "$crashed"
