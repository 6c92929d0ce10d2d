#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after the other (one fuzzer
# process at a time), then prints what each did.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Corpora grow in fuzz/corpus/<target>/ (seeded by fuzz/seed.sh when empty);
# crashes are written to fuzz/artifacts/<target>/ and make the script exit 1.
# Logs: fuzz/target/run-logs/<target>.log.
set -euo pipefail

fuzz="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(pipedrive_webhook hubspot_webhook salesforce_outbound salesforce_change_event dynamics_webhook zoho_notification freshsales_webhook envelope_decode enriched_validation)
fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
# The same flags for the build and every run, so nothing is rebuilt in between.
flags=(+nightly fuzz)
build_flags=(-O --debug-assertions)

for target in "${targets[@]}"; do
    if [ -z "$(find "corpus/$target" -type f 2>/dev/null | head -n1)" ]; then
        ./seed.sh >/dev/null
        break
    fi
done
cargo "${flags[@]}" build "${build_flags[@]}"

logs="$fuzz/target/run-logs"
mkdir -p "$logs"
declare -A executions rate corpus crashes elapsed
for target in "${targets[@]}"; do
    mkdir -p "artifacts/$target" "corpus/$target"
    echo "== $target: ${seconds}s" >&2
    started=$(date +%s)
    status=0
    cargo "${flags[@]}" run "${build_flags[@]}" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        >"$logs/$target.log" 2>&1 || status=$?
    elapsed[$target]=$(($(date +%s) - started))
    executions[$target]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -n1)
    rate[$target]=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$target.log" | tail -n1)
    corpus[$target]=$(find "corpus/$target" -type f | wc -l)
    crashes[$target]=$(find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'leak-*' \
        -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    if [ "$status" -ne 0 ] && [ "${crashes[$target]}" -eq 0 ]; then
        echo "$target: the fuzzer exited $status without an artifact; see $logs/$target.log" >&2
        crashes[$target]="error"
    fi
    tail -n 3 "$logs/$target.log" >&2
done

failed=0
printf '\n%-22s %8s %14s %10s %8s %8s\n' target seconds executions exec/s corpus crashes
for target in "${targets[@]}"; do
    printf '%-22s %8s %14s %10s %8s %8s\n' "$target" "${elapsed[$target]}" \
        "${executions[$target]:-?}" "${rate[$target]:-?}" "${corpus[$target]}" "${crashes[$target]}"
    if [ "${crashes[$target]}" != 0 ]; then
        failed=1
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "crashes: see fuzz/artifacts/<target>/ (reproduce: cargo +nightly fuzz run ${build_flags[*]} <target> <file>)" >&2
fi
exit "$failed"
