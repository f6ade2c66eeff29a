"""Every curl example of docs/admin-data.md, run in order against a gateway in front of
the mock upstream: the documentation cannot drift from what the API does."""

from __future__ import annotations

from pathlib import Path

from llmrelay.mock_upstream import MockUpstream
from tests.admin import seed_000
from tests.admin.conftest import MASTER
from tests.inprocess.app_client import InProcessGateway

DOC = Path(__file__).parents[2] / "docs" / "admin-data.md"
#: What the examples write for the mock upstream and the master key.
UPSTREAM = "http://127.0.0.1:4010/v1"


async def test_every_example_of_the_admin_data_doc_works(
    gw: InProcessGateway, mock: MockUpstream
) -> None:
    key = await gw.create_key("docs-examples")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert (await gw.post("/v1/chat/completions", body, key=key)).status_code == 200
    rows = await gw.wait_rows("SELECT id FROM requests", 1)
    examples = seed_000.curl_requests(DOC.read_text())
    assert len(examples) >= 20, len(examples)
    seen: list[str] = []
    for curl in examples:
        headers = {k: v.replace("$LLMRELAY_MASTER_KEY", MASTER) for k, v in curl.headers.items()}
        assert not curl.broken_headers, curl
        path = curl.path.replace("$REQUEST_ID", rows[0][0])
        payload = curl.body
        if isinstance(payload, dict) and payload.get("base_url") == UPSTREAM:
            payload = {**payload, "base_url": mock.base_url}
        r = await gw.client.request(curl.method, path, json=payload, headers=headers)
        assert r.status_code < 300, (curl.method, path, r.text)
        if path.endswith("/test"):
            assert r.json()["ok"] is True, r.text
        if curl.method == "POST" and path == "/admin/providers":
            assert r.json()["api_key_hint"] == "sk-…cdef"
        seen.append(f"{curl.method} {path.split('?')[0]}")
    assert (
        "sk-local-0123456789abcdef"
        not in (
            await gw.client.get("/admin/audit", headers={"authorization": f"Bearer {MASTER}"})
        ).text
    )
    for needed in (
        "POST /admin/providers",
        "POST /admin/providers/reload",
        "PATCH /admin/models/gpt-4o-mini",
        "PUT /admin/route-configs/smart",
        "GET /admin/usage/budgets",
    ):
        assert needed in seen, seen
