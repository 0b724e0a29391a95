"""Every route of the API fuzzed from its own OpenAPI document (schemathesis), against a real
loopback server holding an incident that waits for approval: whatever the request, valid or
not, the answer is never a 5xx, its status is one the document lists, and its body has the
documented shape.

schemathesis' pytest plugin does not run under this pytest (it reads a node attribute pytest
9 removed), so its cases are drawn with hypothesis directly: one derandomized run per route
and generation mode, every problem recorded (not just the first), then reported together."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_support import bearer, work_awaiting_approval
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from opsloop.api.auth import load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.api.server import ServerThread, running_api
from opsloop.policy import load_policies
from opsloop.settings import Settings

ADMIN = "fuzz-admin-token-0123456789abcdef"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Per route and mode. Derandomized (the same cases every run), no shrinking (a problem is
# recorded, not raised), well under a minute in all.
EXAMPLES = 40
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[ServerThread, dict[str, str]]]:
    work: Path = tmp_path_factory.mktemp("api-fuzz") / "work"
    incident_id = work_awaiting_approval(tmp_path_factory, work)
    app_settings = Settings(work_dir=work, api_tokens=SecretStr(f"fuzz:admin:{ADMIN}"),
                            api_max_body_bytes=256 * 1024)
    runtime = IntakeRuntime(app_settings, load_policies(app_settings.policies_dir))
    [waiting] = runtime.read(lambda s: s.pending())
    known = {"incident_id": incident_id, "approval_id": waiting.id}
    with running_api(runtime, load_tokens(app_settings)) as server:
        yield server, known


def _passes(operations: list[Any], known: dict[str, str]
            ) -> list[tuple[Any, GenerationMode, dict[str, str] | None]]:
    """Every route valid and invalid; then, since random ids reach only "no such record",
    the routes about one record again with ids that exist: the decisions last, modify
    first (most of its changes are refused), so the approval waits as long as it can."""
    passes: list[tuple[Any, GenerationMode, dict[str, str] | None]] = [
        (o, mode, None) for o in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    order = ("modify", "reject", "approve")
    about_one = [o for o in operations if any(f"{{{k}}}" in o.path for k in known)]
    about_one.sort(key=lambda o: next((i for i, verb in enumerate(order)
                                       if o.path.endswith(verb)), -1))
    passes += [(o, GenerationMode.POSITIVE,
                {k: v for k, v in known.items() if f"{{{k}}}" in o.path}) for o in about_one]
    return passes


@pytest.mark.slow
def test_no_request_to_any_route_gets_a_5xx_or_an_undocumented_answer(
    served: tuple[ServerThread, dict[str, str]],
) -> None:
    server, known = served
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 35  # every route is in the document
    sent: Counter[str] = Counter()
    problems: list[str] = []
    for operation, mode, path_parameters in _passes(operations, known):

        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode,
                                          path_parameters=path_parameters))
        def send(case: schemathesis.Case) -> None:
            response = case.call(base_url=server.url, headers=bearer(ADMIN), timeout=30)
            sent[case.operation.label] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, BaseExceptionGroup) as exc:  # recorded, reported below
                problems.append(f"{response.status_code} {case.as_curl_command()}\n"
                                f"    {exc}\n    {response.text[:300]}")

        try:
            send()
        except Unsatisfiable:  # nothing to make invalid: a route without parameters
            assert mode is GenerationMode.NEGATIVE, operation.label
    print(f"fuzzed {len(operations)} routes with {sum(sent.values())} requests; "
          f"{len(problems)} problems")
    assert all(sent[o.label] > 0 for o in operations), sent
    assert not problems, "\n".join(problems[:20])
