"""Property-based fuzzing of the admin API against its own OpenAPI document (schemathesis).

Every operation of ``/admin/openapi.json`` is called with bodies, paths and queries
generated from its schema (valid ones and, through schemathesis's negative mode, invalid
ones) on a real ``llmrelay serve`` with a master key. What must hold for every call:

- no ``5xx`` (a bad value is a clear ``4xx``, never an internal error);
- an answer with a status the document declares matches the declared schema.

The examples are derandomised and bounded per operation, so the run is repeatable and
takes seconds per operation; a failure prints the exact call to replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from llmrelay.mock_upstream import MockUpstream
from tests.gateway_proc import GatewayProcess

MASTER = "sk-master-fuzz-admin-openapi-3141"
AUTH = {"authorization": f"Bearer {MASTER}"}
#: Generated calls per operation (valid and invalid ones).
EXAMPLES = 20


@pytest.fixture(scope="module")
def admin_gateway(
    upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config: dict[str, Any] = {
        "master_key": MASTER,
        "providers": [
            {
                "name": "up",
                "type": "openai_compatible",
                "base_url": upstream.base_url,
                "api_key": "upstream-key-fuzz-admin",
            }
        ],
    }
    gw = GatewayProcess(tmp_path_factory.mktemp("fuzz-admin"), config).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def admin_schema(admin_gateway: GatewayProcess) -> Any:
    document = httpx.get(admin_gateway.url + "/admin/openapi.json", timeout=15).json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=admin_gateway.url)
    return schema


def test_no_server_error_and_declared_answers_match(admin_schema: Any) -> None:
    operations = [result.ok() for result in admin_schema.get_all_operations()]
    assert len(operations) >= 10, "the admin API's document lists its operations"
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                headers=AUTH,
                timeout=15,
                checks=[not_a_server_error, response_schema_conformance],
            )

        try:
            run()
        except Exception as exc:  # every operation is tried; all failures reported
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert not failures, "\n\n".join(failures)
