"""Drives the fake HubSpot API with HubSpot's official Python client
(hubspot-api-client, installed by deploy/local/up.sh into <state>/hubspot-client)
and prints what the client parsed, as one JSON object, for
tests/tests/hubspot_client.rs to check against the portal it served.

usage: hubspot_client.py BASE_URL ACCESS_TOKEN

The fake is expected to answer the first two requests with 429 (a storm with
Retry-After): a client that never retries must see HubSpot's 429, and the
client as configured by default (urllib3's default retries) must wait the
second one out.
"""

import json
import sys
import time
from datetime import datetime

import hubspot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, SimplePublicObjectId
from hubspot.crm.deals import ApiException as DealsApiException
from hubspot.crm.owners import ApiException as OwnersApiException
from urllib3.util.retry import Retry

BASE_URL, TOKEN = sys.argv[1], sys.argv[2]


def client(token, retry=None):
    return hubspot.Client.create(access_token=token, host=BASE_URL, retry=retry)


def when(value):
    # The client parses times into datetimes; anything else means it did not.
    assert isinstance(value, datetime), f"not parsed as a datetime: {value!r}"
    return value.isoformat()


def failure(error):
    return {
        "status": error.status,
        "body": json.loads(error.body),
        "headers": {k.lower(): v for k, v in error.headers.items()},
    }


report = {}

# HubSpot's 429 as a client that never retries sees it.
try:
    client(TOKEN, Retry(total=0)).crm.deals.basic_api.get_by_id("101")
    report["rate_limited"] = None
except DealsApiException as error:
    report["rate_limited"] = failure(error)

# The client as configured by default: urllib3's default retries wait out a
# 429 that carries Retry-After.
api = client(TOKEN)
started = time.monotonic()
deal = api.crm.deals.basic_api.get_by_id(
    "101",
    properties=["dealname", "amount", "deal_currency_code", "dealstage", "pipeline", "hs_is_closed_won", "closedate"],
    properties_with_history=["dealstage"],
    associations=["contacts", "companies"],
)
report["retried_seconds"] = time.monotonic() - started
report["deal"] = {
    "id": deal.id,
    "properties": deal.properties,
    "created_at": when(deal.created_at),
    "updated_at": when(deal.updated_at),
    "archived": deal.archived,
    "dealstage_history": [
        {"value": v.value, "timestamp": when(v.timestamp), "source_type": v.source_type, "source_id": v.source_id}
        for v in deal.properties_with_history["dealstage"]
    ],
    "associations": {
        name: [{"id": a.id, "type": a.type} for a in collection.results]
        for name, collection in deal.associations.items()
    },
}

batch = api.crm.contacts.batch_api.read(
    BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id="201"), SimplePublicObjectId(id="202"), SimplePublicObjectId(id="999")],
        properties=["email", "firstname"],
        properties_with_history=[],
    )
)
report["contacts"] = {
    "model": type(batch).__name__,
    "status": batch.status,
    "results": [{"id": r.id, "email": r.properties["email"], "created_at": when(r.created_at)} for r in batch.results],
    "num_errors": getattr(batch, "num_errors", None),
    "errors": [{"category": e.category, "message": e.message, "context": e.context} for e in batch.errors or []],
    "completed_at": when(batch.completed_at),
}

# Every deal a page of one at a time, following paging.next.after, and through
# the client's own helper.
deals, after = [], None
while True:
    page = api.crm.deals.basic_api.get_page(limit=1, after=after, properties=["dealname"])
    deals += [d.id for d in page.results]
    if page.paging is None or page.paging.next is None:
        break
    after = page.paging.next.after
report["paged_deals"] = deals
report["all_deals"] = [d.id for d in api.crm.deals.get_all(properties=["dealname"])]

pipelines = api.crm.pipelines.pipelines_api.get_all(object_type="deals")
report["pipelines"] = [
    {
        "id": p.id,
        "label": p.label,
        "display_order": p.display_order,
        "stages": [{"id": s.id, "label": s.label, "metadata": s.metadata} for s in p.stages],
    }
    for p in pipelines.results
]

owners = []
after = None
while True:
    page = api.crm.owners.owners_api.get_page(limit=1, after=after)
    owners += [{"id": o.id, "email": o.email, "first_name": o.first_name, "user_id": o.user_id} for o in page.results]
    if page.paging is None or page.paging.next is None:
        break
    after = page.paging.next.after
report["owners"] = owners
report["owner_by_user_id"] = api.crm.owners.owners_api.get_by_id(owner_id="9002", id_property="userId").id

properties = api.crm.properties.core_api.get_all(object_type="deals")
report["deal_properties"] = {
    p.name: {"type": p.type, "field_type": p.field_type, "options": [o.value for o in p.options]}
    for p in properties.results
}

associations = api.crm.associations.v4.batch_api.get_page(
    from_object_type="deals",
    to_object_type="companies",
    batch_input_public_fetch_associations_batch_request=BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id="101"), PublicFetchAssociationsBatchRequest(id="102")]
    ),
)
report["deal_companies"] = {
    "model": type(associations).__name__,
    "results": [
        {
            "from": r._from.id,
            "to": [
                {"id": t.to_object_id, "types": [[a.type_id, a.category, a.label] for a in t.association_types]}
                for t in r.to
            ],
        }
        for r in associations.results
    ],
    "errors": [e.message for e in getattr(associations, "errors", None) or []],
}

try:
    api.crm.deals.basic_api.get_by_id("999")
    report["missing_deal"] = None
except DealsApiException as error:
    report["missing_deal"] = failure(error)

try:
    client("pat-na1-not-a-token").crm.owners.owners_api.get_page()
    report["unauthorized"] = None
except OwnersApiException as error:
    report["unauthorized"] = failure(error)

json.dump(report, sys.stdout)
