"""The OpenAPI spec holds: generated requests to every /api/v1 operation never get a 5xx,
and every answer matches the documented status codes and schemas.

Schemathesis runs in-process against the ASGI app, with a workspace's token and a seeded
workspace (a source with a trained metric, an insight with a grouped one, a flag change),
so that generated requests reach real objects as well as missing ones.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from lantern.api.app import create_app
from lantern.config import Settings
from tests.factories import (
    add_breakdown,
    add_insight,
    breakdown_counts,
    last_closed_hour,
    make_insight,
    make_metric,
    make_source,
    open_insight,
)
from tests.fakeslack import FakeSlack

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# per operation and mode; raise it for a deeper search (LANTERN_API_EXAMPLES=500)
EXAMPLES = int(os.environ.get("LANTERN_API_EXAMPLES", "20"))


@pytest.fixture
def spec_app(settings: Settings, engine: Engine, fake_slack: FakeSlack) -> FastAPI:
    return create_app(settings.model_copy(update={"slack_base_url": fake_slack.api_url}), engine)


def seed(engine: Engine) -> tuple[str, dict[str, int]]:
    """A workspace with objects of every kind; its token and the ids of its objects."""
    src = make_source(engine)
    make_insight(engine, src)
    # the insight aimed at has a root cause, with its per-value chart, and a grouped one
    versions, start = breakdown_counts({"5.2": 0.5, "5.1": 0.5}, change={"5.2": -0.9}, weeks=2)
    split_id = make_metric(engine, src, name="Checkout", counts=versions.sum(axis=1))
    add_breakdown(engine, src, split_id, versions)
    insight_id = open_insight(engine, src, split_id, start=start, detected_at=versions.index[-1])
    metric_id = make_metric(engine, src, name="Checkout Completed", kind="value", days=9)
    add_insight(engine, src, metric_id, detected_at=last_closed_hour(), parent_id=insight_id)
    stopped = make_metric(engine, src, name="Order Completed", days=9)
    add_insight(
        engine,
        src,
        stopped,
        detected_at=last_closed_hour(),
        kind="tracking_break",
        direction="down",
        tracking_break={
            "detected_as": "outage",
            "kept_share": 1.02,
            "renamed_to": "Order Completed v2",
            "renamed_metric_id": metric_id,
            "volume_ratio": 0.97,
            "app_version": None,
        },
    )
    return src.token, {"source_id": src.id, "metric_id": metric_id, "insight_id": insight_id}


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_api_operation_answers_within_its_documented_schema(
    spec_app: FastAPI, engine: Engine, mode: GenerationMode
) -> None:
    token, ids = seed(engine)
    headers = {"Authorization": f"Bearer {token}"}
    # unknown query parameters are ignored, as browsers' cache busters must be
    config = schemathesis.Config.from_dict({"generation": {"allow-extra-parameters": False}})
    schema = schemathesis.openapi.from_asgi("/openapi.json", spec_app, config=config)
    operations = []
    for result in schema.include(path_regex="^/api/v1/").get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the spec itself is invalid
        if result.ok().path == "/api/v1/webhooks/{webhook_id}/test":
            # it POSTs to a webhook's URL: a generated URL must send nothing off this
            # machine (tests/integration/test_webhooks.py covers it, with a receiver)
            continue
        operations.append(result.ok())
    # deleting the seeded source goes last, so the others meet its objects first
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    assert len(operations) >= 20
    positive = mode is GenerationMode.POSITIVE
    checks = CHECKS if positive else [*CHECKS, negative_data_rejection]

    for operation in operations:
        takes = len(operation.path_parameters) + len(operation.query) + len(operation.body)
        if mode is GenerationMode.NEGATIVE and not takes:
            continue  # nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any, data: st.DataObject) -> None:
            # half the valid requests aim at the seeded objects rather than at random ids
            for where in (case.path_parameters, case.query):
                for name in list(where or {}):
                    if positive and name in ids and data.draw(st.booleans()):
                        where[name] = ids[name]
            case.call_and_validate(headers=headers, checks=checks)

        check()
