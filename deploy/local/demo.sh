#!/usr/bin/env bash
# The main job on local services: starts the broker and ClickHouse
# (deploy/local/up.sh), builds the services, and runs the demo
# (target/release/tributary-demo): a simulated CRM world of two Pipedrive
# accounts over 120 days streamed as webhooks through the collector, the
# enricher (against fake Pipedrive and email-verifier APIs answering from the
# same world) and the activator into ClickHouse; then the dashboard numbers
# next to the ground truth, freshness and throughput, and an HTML report.
#
#   deploy/local/demo.sh                 run it, then stop the services
#   deploy/local/demo.sh --keep          leave everything running to post your own webhooks
#   deploy/local/demo.sh --rate 1000     any tributary-demo option (--help lists them)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$repo"

"$repo/deploy/local/up.sh"

log "building the services and the demo (release)"
cargo build --release --quiet -p tributary-collector -p tributary-enricher -p tributary-activator \
    -p tributary-cli -p tributary-demo

exec "$repo/target/release/tributary-demo" --out "$state/demo" "$@"
