#!/usr/bin/env bash
# Installs what is missing and starts the local services on loopback:
#   - a Kafka-protocol broker (Tansu, SQLite storage) on 127.0.0.1:9092
#   - ClickHouse on 127.0.0.1:8123 (HTTP) and 127.0.0.1:9000 (native)
# then creates the pipeline's topics. Safe to run again: what runs is left alone.
#
#   - chdb-core, a modern ClickHouse engine in-process, in a Python venv at <state>/chdb
#     (the tests run every migration and dashboard query on it as well)
#   - HubSpot's official Python client (hubspot-api-client) in a Python venv at <state>/hubspot-client
#     (a test drives the fake HubSpot API with it, to prove the fake speaks HubSpot's shapes)
#   - Chromium (Debian's `chromium`), headless, which the report test uses to render the HTML report
#
# Environment: TRIBUTARY_LOCAL_STATE (default <repo>/.local), TRIBUTARY_LOCAL_PARTITIONS (6),
# TRIBUTARY_LOCAL_KAFKA_PORT, TRIBUTARY_LOCAL_CLICKHOUSE_HTTP_PORT, TRIBUTARY_LOCAL_CLICKHOUSE_TCP_PORT,
# TRIBUTARY_TOPICS__RAW / __ENRICHED / __DEAD_LETTER (topic names).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mkdir -p "$logs" "$pids" "$state/kafka" "$state/clickhouse"/{etc,data,tmp,user_files,format_schemas}

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

install_tansu() {
    if tansu_bin >/dev/null; then return 0; fi
    command -v cargo >/dev/null || die "cargo is needed to build the broker (tansu $tansu_version)"
    log "building the broker: cargo install tansu $tansu_version with SQLite storage (about 12 minutes on 2 cores; log: $logs/tansu-build.log)"
    cargo install tansu --version "$tansu_version" --locked --no-default-features --features libsql \
        >"$logs/tansu-build.log" 2>&1 || die "building tansu failed; see $logs/tansu-build.log"
    tansu_bin >/dev/null || die "tansu $tansu_version was built but is not on PATH or in ~/.cargo/bin"
}

install_clickhouse() {
    if [[ -x /usr/sbin/clickhouse-server ]]; then return 0; fi
    log "installing clickhouse-server from Debian's packages"
    as_root apt-get update -qq >"$logs/apt.log" 2>&1 || die "apt-get update failed; see $logs/apt.log"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client \
        >>"$logs/apt.log" 2>&1 || die "installing clickhouse failed; see $logs/apt.log"
}

install_chdb() {
    if "$state/chdb/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('chdb-core') != '$chdb_version')" 2>/dev/null; then
        return 0
    fi
    command -v python3 >/dev/null || die "python3 is needed for chdb-core (the modern ClickHouse engine the tests use)"
    log "installing chdb-core $chdb_version into $state/chdb (log: $logs/chdb-install.log)"
    python3 -m venv "$state/chdb" >"$logs/chdb-install.log" 2>&1 || die "creating the chdb venv failed; see $logs/chdb-install.log"
    "$state/chdb/bin/pip" install --quiet "chdb-core==$chdb_version" >>"$logs/chdb-install.log" 2>&1 \
        || die "installing chdb-core failed; see $logs/chdb-install.log"
}

install_hubspot_client() {
    if "$state/hubspot-client/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('hubspot-api-client') != '$hubspot_client_version')" 2>/dev/null; then
        return 0
    fi
    command -v python3 >/dev/null || die "python3 is needed for HubSpot's Python client (a test drives the fake HubSpot API with it)"
    log "installing hubspot-api-client $hubspot_client_version into $state/hubspot-client (log: $logs/hubspot-client-install.log)"
    python3 -m venv "$state/hubspot-client" >"$logs/hubspot-client-install.log" 2>&1 \
        || die "creating the hubspot-client venv failed; see $logs/hubspot-client-install.log"
    "$state/hubspot-client/bin/pip" install --quiet "hubspot-api-client==$hubspot_client_version" >>"$logs/hubspot-client-install.log" 2>&1 \
        || die "installing hubspot-api-client failed; see $logs/hubspot-client-install.log"
}

install_chromium() {
    if [[ -x /usr/bin/chromium ]]; then return 0; fi
    log "installing chromium from Debian's packages (headless, for the report test; log: $logs/apt.log)"
    as_root apt-get update -qq >>"$logs/apt.log" 2>&1 || die "apt-get update failed; see $logs/apt.log"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
        >>"$logs/apt.log" 2>&1 || die "installing chromium failed; see $logs/apt.log"
}

# The process we started is alive and its port answers. Right after the fork the
# recorded pid may still be the shell that is about to exec the service, so a
# command line that does not match yet means "not yet", and only a gone process fails.
started() {
    local name=$1 expect=$2 port=$3 log_file=$4 pid
    pid=$(<"$pids/$name.pid")
    if ! kill -0 "$pid" 2>/dev/null; then
        log "$name exited right after starting; the end of $log_file:"
        tail -n 20 "$log_file" >&2 || true
        die "$name exited right after starting"
    fi
    running_pid "$name" "$expect" >/dev/null || return 1
    port_open "$port"
}

wait_for() {
    local what=$1 seconds=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        (( SECONDS < deadline )) || die "$what did not come up within ${seconds}s; see $logs"
        sleep 0.2
    done
}

start_broker() {
    if pid=$(running_pid kafka "tansu broker"); then
        log "broker already running (pid $pid)"
        return 0
    fi
    port_open "$kafka_port" && die "port $kafka_port is taken by a process this script did not start"
    local tansu; tansu=$(tansu_bin)
    # Run from the state folder: the SQLite file path is relative, and tansu reads ./.env there.
    (
        cd "$state/kafka"
        : >.env
        RUST_LOG=warn nohup "$tansu" broker \
            --listener-url "tcp://127.0.0.1:$kafka_port" \
            --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
            --storage-engine "sqlite://tansu.db" \
            >>"$logs/kafka.log" 2>&1 &
        echo $! >"$pids/kafka.pid"
    )
    wait_for "the broker" 30 started kafka "tansu broker" "$kafka_port" "$logs/kafka.log"
    log "broker started (pid $(<"$pids/kafka.pid"))"
}

start_clickhouse() {
    if pid=$(running_pid clickhouse "clickhouse-server"); then
        log "clickhouse already running (pid $pid)"
        return 0
    fi
    port_open "$clickhouse_http_port" && die "port $clickhouse_http_port is taken by a process this script did not start"
    sed -e "s|@STATE@|$state|g" -e "s|@HTTP_PORT@|$clickhouse_http_port|g" -e "s|@TCP_PORT@|$clickhouse_tcp_port|g" \
        "$repo/deploy/local/clickhouse/config.xml.in" >"$state/clickhouse/etc/config.xml"
    cp "$repo/deploy/local/clickhouse/users.xml" "$state/clickhouse/etc/users.xml"
    nohup /usr/sbin/clickhouse-server --config-file="$state/clickhouse/etc/config.xml" \
        >>"$logs/clickhouse-stdout.log" 2>&1 &
    echo $! >"$pids/clickhouse.pid"
    wait_for "clickhouse" 60 started clickhouse "clickhouse-server" "$clickhouse_http_port" "$logs/clickhouse-server.err.log"
    wait_for "clickhouse" 60 clickhouse_ready
    log "clickhouse started (pid $(<"$pids/clickhouse.pid"))"
}

clickhouse_ready() {
    [[ $(curl -s --max-time 1 "http://127.0.0.1:$clickhouse_http_port/ping" 2>/dev/null) == "Ok." ]]
}

create_topics() {
    local tansu existing topic
    tansu=$(tansu_bin)
    existing=$("$tansu" topic list --broker "tcp://127.0.0.1:$kafka_port" 2>>"$logs/kafka.log" || true)
    for topic in "${topics[@]}"; do
        if grep -qF "\"$topic\"" <<<"$existing"; then
            continue
        fi
        "$tansu" topic create "$topic" --partitions "$partitions" --broker "tcp://127.0.0.1:$kafka_port" \
            >>"$logs/kafka.log" 2>&1 || die "creating topic $topic failed; see $logs/kafka.log"
        log "created topic $topic ($partitions partitions)"
    done
}

install_tansu
install_clickhouse
install_chdb
install_hubspot_client
install_chromium
start_broker
start_clickhouse
create_topics

cat >&2 <<INFO
[local] ready:
[local]   kafka       127.0.0.1:$kafka_port  (tansu $tansu_version, SQLite at $state/kafka/tansu.db)
[local]   clickhouse  http://127.0.0.1:$clickhouse_http_port  native 127.0.0.1:$clickhouse_tcp_port  (data in $state/clickhouse/data)
[local]   chdb        $state/chdb/bin/python  (chdb-core $chdb_version, for the modern-engine checks)
[local]   hubspot     $state/hubspot-client/bin/python  (hubspot-api-client $hubspot_client_version, drives the fake HubSpot API in a test)
[local]   chromium    /usr/bin/chromium  (headless, renders the HTML report in its test)
[local]   topics      ${topics[*]}
[local]   state       $state   logs $logs   pids $pids
[local] stop with deploy/local/down.sh
INFO
