#!/usr/bin/env bash
# The main job on local services: starts the broker and ClickHouse
# (deploy/local/up.sh), builds the services, and runs the demo
# (target/release/tributary-demo): a simulated CRM world of two Pipedrive
# accounts, a HubSpot portal, a Zoho CRM org, a Dynamics 365 organization
# and a Salesforce org over 120 days streamed as webhooks (and Salesforce
# change events pulled from a fake Pub/Sub API) through the collector, the
# enricher (against fake CRM and email-verifier APIs answering from the same
# world) and the activator into ClickHouse; then the dashboard numbers
# next to the ground truth, freshness and throughput, and an HTML report.
#
#   deploy/local/demo.sh                 run it, then stop what it started
#   deploy/local/demo.sh --keep          leave everything running to post your own webhooks
#   deploy/local/demo.sh --rate 1000     any tributary-demo option (--help lists them)
#
# The broker and ClickHouse are stopped afterwards if this script started
# them (services that were already running are left running), unless --keep.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$repo"

keep=0
for arg in "$@"; do
    [[ $arg == --keep ]] && keep=1
done

started_services=0
if ! running_pid kafka "tansu broker" >/dev/null || ! running_pid clickhouse "clickhouse-server" >/dev/null; then
    started_services=1
fi
"$repo/deploy/local/up.sh"

stop_services() {
    local status=$?
    if (( started_services && ! keep )); then
        "$repo/deploy/local/down.sh"
    fi
    exit "$status"
}
trap stop_services EXIT

log "building the services and the demo (release)"
cargo build --release --quiet -p tributary-collector -p tributary-enricher -p tributary-activator \
    -p tributary-cli -p tributary-demo

"$repo/target/release/tributary-demo" --out "$state/demo" "$@"
