#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds made from the test fixtures:
#   pipedrive_webhook    tests/fixtures/pipedrive/**/*.json (v1 and v2 deliveries)
#   hubspot_webhook      tests/fixtures/hubspot/{app,workflow}/*.json
#   salesforce_outbound  tests/fixtures/salesforce/*.xml (Outbound Messages)
#   salesforce_change_event tests/fixtures/salesforce/*.avro (Change Data Capture payloads)
#   dynamics_webhook     tests/fixtures/dynamics/*.json (execution contexts)
#   zoho_notification    tests/fixtures/zoho/*.json (notifications)
#   freshsales_webhook   tests/fixtures/freshsales/*.json (workflow bodies, API answers)
#   envelope_decode      those bodies wrapped in raw-topic envelopes (protobuf,
#                        as the collector writes them) and dead-letter records
#                        (JSON), plus fuzz/seeds/envelope_decode/*
#   enriched_validation  fuzz/seeds/enriched_validation/*.json: enriched events
#                        as the enricher emits them (from the activator's,
#                        the templates' and the mappings' tests)
# Existing corpus files are kept; seeds are named by content, so running it
# again adds nothing new. Needs python3.
set -euo pipefail

fuzz="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$fuzz")"
fixtures="$repo/tests/fixtures"
corpus="$fuzz/corpus"

# copy_in TARGET FILE...: each file under its content's hash.
copy_in() {
    local target="$1"
    shift
    mkdir -p "$corpus/$target"
    for file in "$@"; do
        cp "$file" "$corpus/$target/$(sha1sum "$file" | cut -c1-40)"
    done
}

copy_in pipedrive_webhook "$fixtures"/pipedrive/v1/*.json "$fixtures"/pipedrive/v2/*.json
copy_in hubspot_webhook "$fixtures"/hubspot/app/*.json "$fixtures"/hubspot/workflow/*.json
copy_in salesforce_outbound "$fixtures"/salesforce/*.xml
copy_in salesforce_change_event "$fixtures"/salesforce/*.avro
copy_in dynamics_webhook "$fixtures"/dynamics/*.json
copy_in zoho_notification "$fixtures"/zoho/*.json
copy_in freshsales_webhook "$fixtures"/freshsales/*.json
copy_in enriched_validation "$fuzz"/seeds/enriched_validation/*.json
if compgen -G "$fuzz/seeds/envelope_decode/*" >/dev/null; then
    copy_in envelope_decode "$fuzz"/seeds/envelope_decode/*
fi

mkdir -p "$corpus/envelope_decode"
python3 - "$fixtures" "$corpus/envelope_decode" <<'PY'
"""Raw-topic envelopes (schemas/proto/tributary/envelope/v1/raw_event.proto)
around the fixture bodies, and dead-letter records of them."""
import base64, glob, hashlib, json, os, sys

fixtures, out = sys.argv[1], sys.argv[2]

def varint(n):
    b = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            b.append(byte | 0x80)
        else:
            b.append(byte)
            return bytes(b)

def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value) if value else b""
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value if value else b""

def message(*fields):
    return b"".join(fields)

def write(data):
    with open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)

bodies = sorted(glob.glob(os.path.join(fixtures, "pipedrive/v*/*.json"))) + sorted(
    glob.glob(os.path.join(fixtures, "hubspot/*/*.json")))
for i, path in enumerate(bodies):
    with open(path, "rb") as f:
        body = f.read()
    source = "pipedrive" if "/pipedrive/" in path else "hubspot"
    name = os.path.basename(path)[: -len(".json")]
    obj, _, action = name.partition("-")
    keys = message(field(1, "1" if source == "pipedrive" else "webhooks-v3"), field(2, obj),
                   field(3, str(1000 + i)), field(4, action), field(5, 1 + i % 3),
                   field(6, 1_700_000_000_000_000 + i))
    warnings = [message(field(1, "redelivery"), field(2, "meta.attempt"), field(3, "attempt 3"))] if i % 2 else []
    envelope = message(
        field(1, 1), field(2, "acme"), field(3, source), field(4, 1_700_000_000_123_456 + i),
        field(5, f"0b7c6a4e-1f7e-5a55-9a3e-{i:012d}"), field(6, "application/json"),
        field(7, message(field(1, "user-agent"), field(2, "Pipedrive Webhooks" if source == "pipedrive" else "HubSpot Connect"))),
        field(8, 2 if warnings else 1), *[field(9, w) for w in warnings],
        field(10, body), field(11, keys))
    write(envelope)
    if i % 4 == 0:
        letter = {
            "stage": ["collector", "enricher", "activator"][i % 3],
            "reason": "malformed_envelope",
            "errors": [{"path": "/meta/id", "message": "required"}, {"message": "no path"}],
            "event_id": None if i % 8 else f"e{i}", "tenant": "acme", "source": source,
            "original_topic": "tributary.raw", "original_partition": i % 6, "original_offset": 42 + i,
            "failed_at": "2025-03-04T14:22:31Z",
            "original": base64.b64encode(envelope if i % 8 else body).decode(),
        }
        write(json.dumps(letter, separators=(",", ":")).encode())
# A version the build refuses, and an envelope of defaults only.
write(message(field(1, 2), field(2, "acme")))
write(message(field(1, 1)))
PY

for target in "$corpus"/*/; do
    printf '%-22s %4d seeds\n' "$(basename "$target")" "$(find "$target" -type f | wc -l)"
done
