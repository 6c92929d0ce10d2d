#!/usr/bin/env bash
# Stops exactly the processes deploy/local/up.sh started (by their recorded pids).
# Data stays in the state folder; pass --wipe to delete it as well.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

stop() {
    local name=$1 expect=$2 pid
    if ! pid=$(running_pid "$name" "$expect"); then
        rm -f "$pids/$name.pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for 10s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pids/$name.pid"
    log "stopped $name (pid $pid)"
}

stop kafka "tansu broker"
stop clickhouse "clickhouse-server"
if [[ ${1:-} == --wipe ]]; then
    rm -rf "$state"
    log "removed $state"
fi
