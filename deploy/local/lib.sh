# Shared by the local-services scripts: where things live and how to check them.
# shellcheck shell=bash

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state=${TRIBUTARY_LOCAL_STATE:-$repo/.local}
logs=$state/logs
pids=$state/pids

kafka_port=${TRIBUTARY_LOCAL_KAFKA_PORT:-9092}
clickhouse_http_port=${TRIBUTARY_LOCAL_CLICKHOUSE_HTTP_PORT:-8123}
clickhouse_tcp_port=${TRIBUTARY_LOCAL_CLICKHOUSE_TCP_PORT:-9000}
partitions=${TRIBUTARY_LOCAL_PARTITIONS:-6}
topics=("${TRIBUTARY_TOPICS__RAW:-tributary.raw}" "${TRIBUTARY_TOPICS__ENRICHED:-tributary.enriched}" "${TRIBUTARY_TOPICS__DEAD_LETTER:-tributary.dead-letter}" "${TRIBUTARY_TOPICS__RETRY:-tributary.enrichment-retry}")

# The broker: Tansu, an Apache-Kafka-compatible broker, pinned and built with SQLite storage.
tansu_version=0.6.0
# The modern ClickHouse engine the tests check migrations and dashboard SQL on.
chdb_version=26.9.0
# HubSpot's official Python client, which a test drives against the fake HubSpot API.
hubspot_client_version=12.0.0

log() { printf '[local] %s\n' "$*" >&2; }
die() { printf '[local] error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The pid recorded for a service, if that process is still the one we started.
running_pid() {
    local name=$1 expect=$2 pid
    [[ -f $pids/$name.pid ]] || return 1
    pid=$(<"$pids/$name.pid")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$expect" || return 1
    echo "$pid"
}

tansu_bin() {
    local candidate
    for candidate in "$(command -v tansu 2>/dev/null)" "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"; do
        if [[ -x $candidate ]] && [[ $("$candidate" --version 2>/dev/null) == "tansu $tansu_version" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
