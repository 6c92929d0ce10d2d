#!/usr/bin/env bash
# Runs Tributary's whole test suite against real local services.
#
# Starts the local services (deploy/local/up.sh) when they are not running,
# runs every test with the integration-test features on, and afterwards stops
# what it started and any process the tests left behind. Exits non-zero if
# anything failed. Extra arguments go to the test runner (e.g. a test filter).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$repo"

started_services=0
if ! running_pid kafka "tansu broker" >/dev/null || ! running_pid clickhouse "clickhouse-server" >/dev/null; then
    "$repo/deploy/local/up.sh"
    started_services=1
fi

# Every process the tests start inherits this marker, so the clean-up below
# finds them even if a test crashed before stopping them.
export TRIBUTARY_TEST_RUN="test-$$-$RANDOM"

cleanup() {
    local status=$? pid
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}; pid=${pid%/environ}
        [[ $pid == "$$" ]] && continue
        if tr '\0' '\n' 2>/dev/null <"$environ" | grep -qx "TRIBUTARY_TEST_RUN=$TRIBUTARY_TEST_RUN"; then
            kill -KILL "$pid" 2>/dev/null && log "killed leftover test process $pid"
        fi
    done
    if (( started_services )); then
        "$repo/deploy/local/down.sh"
    fi
    exit "$status"
}
trap cleanup EXIT

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-features --no-fail-fast "$@"
else
    log "cargo-nextest not found; using cargo test"
    cargo test --workspace --all-features --no-fail-fast "$@"
fi
