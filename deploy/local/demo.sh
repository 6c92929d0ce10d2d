#!/usr/bin/env bash
# The main job on local services: starts the broker and ClickHouse, the
# collector, posts the sample Pipedrive webhooks from tests/fixtures through
# it over HTTP, and shows them arriving on the raw topic.
#
#   deploy/local/demo.sh            run, then stop the collector
#   deploy/local/demo.sh --keep     leave the collector running to post your own webhooks
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$repo"

keep=0
[[ ${1:-} == --keep ]] && keep=1
export TRIBUTARY_CONFIG=$repo/deploy/local/tributary.toml
collector_url=http://127.0.0.1:8080

"$repo/deploy/local/up.sh"

log "building the services"
cargo build --quiet -p tributary-collector -p tributary-cli

if pid=$(running_pid collector "target/debug/collector"); then
    log "collector already running (pid $pid)"
else
    nohup "$repo/target/debug/collector" >>"$logs/collector.log" 2>&1 &
    echo $! >"$pids/collector.pid"
    for _ in $(seq 1 100); do
        curl -sf "$collector_url/healthz" >/dev/null && break
        running_pid collector "target/debug/collector" >/dev/null || die "the collector exited; see $logs/collector.log"
        sleep 0.1
    done
    log "collector started (pid $(<"$pids/collector.pid"), log $logs/collector.log)"
fi
if (( ! keep )); then
    trap 'kill -TERM "$(<"$pids/collector.pid")" 2>/dev/null || true; rm -f "$pids/collector.pid"' EXIT
fi

since=$(($(date +%s%3N) - 1))
accepted=0
printf '\n%-42s %-6s %s\n' "webhook (tests/fixtures/pipedrive)" status "answer"
for fixture in tests/fixtures/pipedrive/v1/*.json tests/fixtures/pipedrive/v2/*.json; do
    answer=$(curl -s -u hook:s3cret -H 'content-type: application/json' --data-binary "@$fixture" \
        -w '\n%{http_code}' "$collector_url/webhooks/pipedrive/acme")
    status=${answer##*$'\n'}
    printf '%-42s %-6s %s\n' "${fixture#tests/fixtures/pipedrive/}" "$status" "${answer%$'\n'*}"
    [[ $status == 202 ]] && accepted=$((accepted + 1))
done
# One delivery that breaks the rules, to show a rejection.
answer=$(curl -s -u hook:s3cret -H 'content-type: application/json' \
    --data '{"meta":{"v":1,"action":"edited","object":"deal","id":1207}}' \
    -w '\n%{http_code}' "$collector_url/webhooks/pipedrive/acme")
printf '%-42s %-6s %s\n' "(an invalid delivery)" "${answer##*$'\n'}" "${answer%$'\n'*}"

printf '\nOn the raw topic (tributary.raw), in partition order:\n'
"$repo/target/debug/tributary" tail --topic raw --since "$since" --limit "$accepted" --idle-exit 5s

printf '\nCollector metrics:\n'
curl -s "$collector_url/metrics" | grep -E '^tributary_collector_events_(received|accepted|rejected)_total' || true
if (( keep )); then
    printf '\nThe collector keeps running at %s (pid %s). Post your own:\n' "$collector_url" "$(<"$pids/collector.pid")"
    printf "  curl -u hook:s3cret -H 'content-type: application/json' --data-binary @tests/fixtures/pipedrive/v2/deal-change.json %s/webhooks/pipedrive/acme\n" "$collector_url"
    printf '  target/debug/tributary tail --topic raw     # watch them arrive\n'
    printf 'Stop it with: kill %s; deploy/local/down.sh stops the broker and ClickHouse.\n' "$(<"$pids/collector.pid")"
fi
