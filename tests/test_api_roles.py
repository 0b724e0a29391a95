"""Every API route with every role: the rule is that reading needs `read`, posting alerts
`ingest`, and anything that changes what the loop does (decisions, people's verbs, agents,
rollouts, cost marks) `approve`; `admin` may do all. A new route is walked automatically, so
one declared with a weaker role than this rule fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from api_support import bearer, work_awaiting_approval
from pydantic import SecretStr

from opsloop.api.auth import GRANTS, Role, load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.api.server import running_api
from opsloop.policy import load_policies
from opsloop.settings import Settings

TOKENS = {role: f"{role.value}-token-0123456789abcdef" for role in Role}
OPEN_ROUTES = {("GET", "/healthz"), ("GET", "/readyz")}


def needed(method: str, path: str) -> Role | None:
    if (method, path) in OPEN_ROUTES:
        return None
    if method == "GET":
        return Role.READ
    if path.startswith("/api/v1/alerts/"):  # the Alertmanager webhook
        return Role.INGEST
    return Role.APPROVE


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    work = tmp_path_factory.mktemp("roles") / "work"
    work_awaiting_approval(tmp_path_factory, work)
    entries = ",".join(f"{role.value}-user:{role.value}:{token}" for role, token in TOKENS.items())
    settings = Settings(work_dir=work, api_tokens=SecretStr(entries))
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir))
    with running_api(runtime, load_tokens(settings)) as server:
        document = httpx.get(f"{server.url}/openapi.json").json()
        routes = [(method.upper(), path) for path, item in document["paths"].items()
                  for method in item]
        yield server.url, routes


def concrete(path: str) -> str:
    # Ids that exist nowhere: an allowed call finds nothing to change (404), never a 401/403.
    return re.sub(r"\{[^}]+\}", lambda m: "nosuch-9999" if "name" not in m.group(0)
                  else "nosuch-9999.md", path)


def test_every_route_refuses_every_role_below_its_own_and_admits_the_rest(
    served: tuple[str, list[tuple[str, str]]],
) -> None:
    url, routes = served
    assert len(routes) >= 35
    problems = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path in routes:
            need = needed(method, path)
            callers: list[tuple[str, Role | None]] = [("nobody", None),
                                                       *((r.value, r) for r in Role)]
            for label, role in callers:
                headers = bearer(TOKENS[role]) if role is not None else {}
                answer = client.request(method, concrete(path), headers=headers, json={})
                allowed = need is None or (role is not None and need in GRANTS[role])
                refused = answer.status_code in (401, 403)
                if allowed == refused:
                    problems.append(f"{method} {path} as {label}: {answer.status_code} "
                                    f"(needs {need.value if need else 'nothing'})")
                if refused and role is None and answer.status_code != 401:
                    problems.append(f"{method} {path} without a token: {answer.status_code}")
    assert not problems, "\n".join(problems)


def test_the_rule_covers_what_the_loop_changes(served: tuple[str, list[tuple[str, str]]]) -> None:
    _, routes = served
    posts = [p for m, p in routes if m != "GET"]
    assert "/api/v1/alerts/alertmanager" in posts
    assert any(p.endswith("/acknowledge") for p in posts)
    assert any(p.endswith("/approve") for p in posts)
