"""The web console over TestClient: every route refused without a session, each role sees
what it may and is refused what it may not (the buttons absent and the POST refused), CSRF
on every form, the cookie's flags, and decisions recorded under the signed-in identity by
the same path as the API and CLI."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr

from opsloop.agents.postmortem import write_postmortem
from opsloop.agents.signals import read_record, write_signals
from opsloop.api.auth import TokenTable, load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.graph.runner import OperateLoop
from opsloop.models import Signal
from opsloop.policy import load_policies
from opsloop.settings import Settings
from opsloop.store import IncidentStore
from opsloop.watch import run_scenario
from opsloop.web import actions, pages
from opsloop.web.app import create_console_app
from opsloop.web.context import COOKIE, LOGIN_COOKIE
from opsloop.web.users import add_user

APPROVER = "approver-token-0123456789abcdef"
READER = "reader-token-0123456789abcdefgh"
INGEST = "ingest-token-0123456789abcdefgh"
ADMIN = "admin-token-0123456789abcdefghij"
TOKENS = f"ana:approve:{APPROVER},rita:read:{READER},ivan:ingest:{INGEST},ada:admin:{ADMIN}"
BASE = "http://127.0.0.1:8080"
HOSTILE = "<script>alert('owned')</script>"
_built: dict[str, Path] = {}


def work_with_two_waiting(factory: pytest.TempPathFactory, into: Path) -> None:
    """Copy a work dir where two bad_deploy incidents wait for a human (built once per run
    through the real loop), with a postmortem draft and a signal, into `into`."""
    if "work" not in _built:
        work = factory.mktemp("web-console") / "work"
        settings = Settings(work_dir=work)
        loop = OperateLoop(settings)
        try:
            first = run_scenario(loop, "bad_deploy", 7, lambda _: None).incidents[0]
            run_scenario(loop, "bad_deploy", 8, lambda _: None)
        finally:
            loop.close()
        write_postmortem(first, settings.postmortems_dir)
        write_signals([Signal(id="sig-hostile", kind="repeated_incidents",
                              title=f"checkout keeps failing {HOSTILE}",
                              evidence=[f"INC-0001 {HOSTILE}"], suggested_mission="fix it",
                              incidents=["INC-0001"], created_at=datetime.now(UTC))],
                      settings.signals_dir)
        _built["work"] = work
    shutil.copytree(_built["work"], into)


@pytest.fixture
def settings(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(work_dir=tmp_path / "work", api_tokens=SecretStr(TOKENS),
                        console_users_file=tmp_path / "users")
    work_with_two_waiting(tmp_path_factory, settings.work_dir)
    add_user(tmp_path / "users", "uma", load_role("approve"), "correct horse battery")
    return settings


def load_role(name: str) -> Any:
    from opsloop.api.auth import Role

    return Role(name)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[IntakeRuntime]:
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir))
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def client_for(runtime: IntakeRuntime, tokens: TokenTable | None = None,
               base: str = BASE) -> TestClient:
    app = create_console_app(runtime, tokens or load_tokens(runtime.settings))
    return TestClient(app, base_url=base, follow_redirects=False)


@pytest.fixture
def anon(runtime: IntakeRuntime) -> Iterator[TestClient]:
    with client_for(runtime) as client:
        yield client


def login_csrf(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def sign_in(client: TestClient, **fields: str) -> TestClient:
    answer = client.post("/login", data={"csrf": login_csrf(client), "next": "/", **fields})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: TestClient, path: str = "/approvals") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


@pytest.fixture
def ana(runtime: IntakeRuntime) -> Iterator[TestClient]:
    with client_for(runtime) as client:
        yield sign_in(client, token=APPROVER)


@pytest.fixture
def rita(runtime: IntakeRuntime) -> Iterator[TestClient]:
    with client_for(runtime) as client:
        yield sign_in(client, token=READER)


def waiting(runtime: IntakeRuntime) -> dict[str, str]:
    """Approval id by incident id, for what still waits."""
    return {p.incident_id: p.id for p in runtime.read(lambda s: s.pending())}


def console_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, concrete path) of every console page and action (sign-in aside)."""
    fill = {"incident_id": "INC-0001", "approval_id": "APR-x", "name": "INC-0001.md",
            "signal_id": "sig-hostile", "verb": "decline"}
    found = []
    for route in [*pages.router.routes, *actions.router.routes]:
        assert isinstance(route, APIRoute) and not route.include_in_schema
        path = route.path
        for key, value in fill.items():
            path = path.replace("{" + key + "}", value)
        found.extend((method, path) for method in sorted(route.methods))
    return found


def test_the_console_adds_pages_and_actions_but_not_to_the_api_document(
    anon: TestClient,
) -> None:
    routes = console_routes(anon)
    assert len([r for r in routes if r[0] == "GET"]) == 12
    assert len([r for r in routes if r[0] == "POST"]) == 7
    paths = anon.get("/openapi.json").json()["paths"]
    assert all(p.startswith(("/api/", "/healthz", "/readyz")) for p in paths), sorted(paths)


def test_no_page_or_action_answers_without_a_session(anon: TestClient,
                                                     runtime: IntakeRuntime) -> None:
    before = waiting(runtime)
    for method, path in console_routes(anon):
        answer = anon.request(method, path, data={"csrf": "x", "reason": "r"})
        if method == "GET":
            assert answer.status_code == 303, (path, answer.status_code)
            assert answer.headers["location"].startswith("/login?next=%2F"), path
        else:
            assert answer.status_code == 401, (path, answer.status_code)
            assert "sign in" in answer.text
    assert waiting(runtime) == before
    assert anon.post("/logout", data={"csrf": "x"}).status_code == 401


def test_a_reader_sees_every_page_but_no_decision_and_is_refused_each_action(
    rita: TestClient, runtime: IntakeRuntime,
) -> None:
    before = waiting(runtime)
    for method, path in console_routes(rita):
        if method == "GET":
            assert rita.get(path).status_code == 200, path
    queue = rita.get("/approvals").text
    assert "/approve\"" not in queue and "Reject" not in queue
    assert "cannot decide approvals" in queue
    assert "Edit" not in rita.get("/postmortems/INC-0001.md").text
    assert ">Accept</button>" not in rita.get("/signals").text
    csrf = csrf_of(rita)
    for method, path in console_routes(rita):
        if method == "POST":
            answer = rita.post(path, data={"csrf": csrf, "reason": "why not",
                                           "markdown": "# x", "mark": "published"})
            assert answer.status_code == 403, (path, answer.text)
            assert "rita has role read" in answer.text
    assert waiting(runtime) == before


@pytest.mark.parametrize("token", [APPROVER, ADMIN])
def test_approvers_and_admins_see_every_page_with_its_decisions(runtime: IntakeRuntime,
                                                                token: str) -> None:
    with client_for(runtime) as client:
        sign_in(client, token=token)
        for method, path in console_routes(client):
            if method == "GET":
                page = client.get(path)
                assert page.status_code == 200, (path, page.text[:300])
                assert "Traceback" not in page.text
        queue = client.get("/approvals").text
        assert '<span class="count" id="queue-count">2</span>' in queue
        assert queue.count('class="approval card"') == 2
        assert queue.count(">Approve</button>") == 2
        assert ">Edit</a>" in client.get("/postmortems/INC-0001.md").text
        assert ">Accept</button>" in client.get("/signals").text


def test_an_ingest_token_cannot_sign_in_and_an_unknown_one_is_401(anon: TestClient) -> None:
    refused = anon.post("/login", data={"csrf": login_csrf(anon), "token": INGEST})
    assert refused.status_code == 403
    assert "ivan has role ingest" in refused.text
    assert COOKIE not in refused.cookies
    unknown = anon.post("/login", data={"csrf": login_csrf(anon), "token": "x" * 40})
    assert unknown.status_code == 401
    assert "unknown or revoked token" in unknown.text


def test_sign_in_without_the_forms_csrf_token_is_403(runtime: IntakeRuntime) -> None:
    with client_for(runtime) as client:
        answer = client.post("/login", data={"token": APPROVER, "csrf": "forged"})
        assert answer.status_code == 403
        assert COOKIE not in client.cookies
        login_csrf(client)
        answer = client.post("/login", data={"token": APPROVER})
        assert answer.status_code == 403
        assert client.get("/approvals").status_code == 303


def set_cookie(answer: Any, name: str) -> str:
    return next(h for h in answer.headers.get_list("set-cookie") if h.startswith(name + "="))


def test_the_session_cookie_is_httponly_samesite_strict_and_secure_over_https(
    runtime: IntakeRuntime,
) -> None:
    with client_for(runtime) as client:
        answer = client.post("/login", data={"csrf": login_csrf(client), "token": APPROVER})
        cookie = set_cookie(answer, COOKIE).lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert "secure" not in cookie.replace("samesite", "")
    with client_for(runtime, base="https://127.0.0.1") as client:
        page = client.get("/login")
        assert "secure" in set_cookie(page, LOGIN_COOKIE).lower().replace("samesite", "")
        answer = client.post("/login", data={"csrf": login_csrf(client), "token": APPROVER})
        assert "; secure" in set_cookie(answer, COOKIE).lower()


def test_a_tampered_cookie_is_no_session(ana: TestClient) -> None:
    value = ana.cookies[COOKIE]
    ana.cookies.clear()
    ana.cookies.set(COOKIE, value[:-1] + ("0" if value[-1] != "0" else "1"))
    assert ana.get("/").status_code == 303


def test_every_post_without_a_valid_csrf_token_is_403_and_changes_nothing(
    ana: TestClient, runtime: IntakeRuntime, settings: Settings,
) -> None:
    before = waiting(runtime)
    draft = (settings.postmortems_dir / "INC-0001.md").read_text()
    for method, path in console_routes(ana):
        if method != "POST":
            continue
        for form in ({"reason": "r"}, {"reason": "r", "csrf": "not-the-token"}):
            answer = ana.post(path, data=form)
            assert answer.status_code == 403, (path, answer.text)
            assert "CSRF" in answer.text
    assert waiting(runtime) == before
    assert (settings.postmortems_dir / "INC-0001.md").read_text() == draft
    assert read_record(next(settings.signals_dir.glob("*.md"))).status.value == "new"
    assert ana.post("/logout", data={}).status_code == 403


def test_a_json_body_is_not_a_form(ana: TestClient, runtime: IntakeRuntime) -> None:
    approval = waiting(runtime)["INC-0001"]
    answer = ana.post(f"/approvals/{approval}/approve", json={"csrf": csrf_of(ana)})
    assert answer.status_code == 415


def test_approving_records_the_signed_in_identity_through_the_loop(
    ana: TestClient, runtime: IntakeRuntime, settings: Settings,
) -> None:
    approval = waiting(runtime)["INC-0001"]
    answer = ana.post(f"/approvals/{approval}/approve",
                      data={"csrf": csrf_of(ana), "reason": "rollback looks right",
                            "back": "/incidents/INC-0001"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/incidents/INC-0001"
    assert "INC-0001" not in waiting(runtime)
    page = ana.get("/incidents/INC-0001").text
    assert f"approved {approval} as ana" in page
    assert "by ana" in page and "rollback looks right" in page
    store = IncidentStore(settings.state_dir / "opsloop.db")
    try:
        incident = store.get_incident("INC-0001")
        assert incident.actions[0].approval is not None
        assert incident.actions[0].approval.by == "ana"
        assert any(a.actor == "ana" for a in store.audit_log("INC-0001"))
    finally:
        store.close()
    for verb in ("approve", "reject", "modify"):
        missing = ana.post(f"/approvals/APR-nosuch/{verb}",
                           data={"csrf": csrf_of(ana), "reason": "r", "changes": "a=1"})
        assert missing.status_code == 404, (verb, missing.text)
        assert "no approval &#39;APR-nosuch&#39;" in missing.text
    again = ana.post(f"/approvals/{approval}/approve", data={"csrf": csrf_of(ana)})
    assert again.status_code == 409
    assert "already decided" in again.text


def test_a_rejection_needs_a_reason_and_is_kept_with_it(ana: TestClient,
                                                        runtime: IntakeRuntime) -> None:
    approval = waiting(runtime)["INC-0002"]
    path = f"/approvals/{approval}/reject"
    empty = ana.post(path, data={"csrf": csrf_of(ana), "reason": "  "})
    assert empty.status_code == 422
    assert "a rejection needs a reason" in empty.text
    assert waiting(runtime)["INC-0002"] == approval
    done = ana.post(path, data={"csrf": csrf_of(ana), "reason": "deploy is fine; flag it"})
    assert done.status_code == 303
    assert "INC-0002" not in waiting(runtime)
    incident = ana.get("/incidents/INC-0002").text
    assert "reject</strong> by ana" in incident and "deploy is fine; flag it" in incident


def test_a_modification_policy_refuses_is_shown_and_the_approval_keeps_waiting(
    ana: TestClient, runtime: IntakeRuntime,
) -> None:
    approval = waiting(runtime)["INC-0001"]
    path = f"/approvals/{approval}/modify"
    refused = ana.post(path, data={"csrf": csrf_of(ana), "changes": "replicas=12",
                                   "reason": "more"})
    assert refused.status_code == 422
    assert "rollback_deploy has no parameter &#39;replicas&#39;" in refused.text
    assert "The approval still waits" in refused.text
    assert "replicas=12" in refused.text  # what was typed is kept
    unchanged = ana.post(path, data={"csrf": csrf_of(ana), "changes": "to_version=2.13.2"})
    assert unchanged.status_code == 422 and "nothing changed" in unchanged.text
    garbled = ana.post(path, data={"csrf": csrf_of(ana), "changes": "to_version"})
    assert garbled.status_code == 422 and "write KEY=VALUE" in garbled.text
    assert waiting(runtime)["INC-0001"] == approval


def test_the_incident_page_shows_the_record(ana: TestClient) -> None:
    page = ana.get("/incidents/INC-0001").text
    for part in ("SEV1", "severity.yaml", "Hypothesis", "%</td>", "rollback_deploy",
                 "needs_approval", "remediation.yaml", "Timeline", "Audit log",
                 'data-live="/fragments/incidents/INC-0001"'):
        assert part in page, part
    assert 'href="/warrooms/INC-0001.md"' in page
    warroom = ana.get("/warrooms/INC-0001.md").text
    assert "incident_commander" in warroom and "HighErrorRate" in warroom
    assert ana.get("/warrooms/INC-9999.md").status_code == 404
    assert ana.get("/incidents/INC-9999").status_code == 404
    assert ana.get("/incidents/..%2Fetc").status_code in (404, 422)


def test_live_fragments_follow_the_incident(ana: TestClient, runtime: IntakeRuntime) -> None:
    before = ana.get("/fragments/incidents/INC-0002").text
    rows = ana.get("/fragments/incidents?status=awaiting_approval").text
    assert "INC-0002" in rows and "<html" not in before
    approval = waiting(runtime)["INC-0002"]
    ana.post(f"/approvals/{approval}/reject", data={"csrf": csrf_of(ana), "reason": "no"})
    after = ana.get("/fragments/incidents/INC-0002").text
    assert after != before
    assert 'id="incident-status">rejected<' in after
    assert "INC-0002" not in ana.get("/fragments/incidents?status=awaiting_approval").text


def test_the_incident_list_filters(ana: TestClient) -> None:
    assert ana.get("/?status=awaiting_approval").text.count('href="/incidents/INC-') == 2
    assert ana.get("/?status=mitigated").text.count('href="/incidents/INC-') == 0
    assert ana.get("/?severity=SEV4").text.count('href="/incidents/INC-') == 0
    assert ana.get("/?service=checkout&severity=SEV1").text.count('href="/incidents/INC-') == 2
    assert ana.get("/?service=nosuch").text.count('href="/incidents/INC-') == 0
    bad = ana.get("/?status=exploded&age=forever")
    assert bad.status_code == 200
    assert "status &#39;exploded&#39; is not one of" in bad.text
    assert "age &#39;forever&#39; is not one of" in bad.text


def test_untrusted_text_is_escaped(ana: TestClient, settings: Settings) -> None:
    board = ana.get("/signals").text
    assert HOSTILE not in board and "&lt;script&gt;" in board
    path = settings.postmortems_dir / "INC-0001.md"
    path.write_text(path.read_text() + f"\n{HOSTILE}\n[x](javascript:alert(1))\n")
    page = ana.get("/postmortems/INC-0001.md")
    assert "<script>" not in page.text.split("markdown-body")[1], page.text
    assert "&lt;script&gt;alert" in page.text and 'href="javascript' not in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'self'" in page.headers["content-security-policy"]


def version_of(page: str) -> str:
    found = re.search(r'name="version" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_a_postmortem_is_edited_then_published_with_who_and_when(
    ana: TestClient, settings: Settings,
) -> None:
    path = "/postmortems/INC-0001.md"
    editing = ana.get(path + "?edit=true").text
    assert "<textarea" in editing
    version = version_of(editing)
    saved = ana.post(path, data={"csrf": csrf_of(ana, path), "version": version,
                                 "markdown": "# INC-0001\n\nThe deploy broke checkout.\n"})
    assert saved.status_code == 303
    stale = ana.post(path, data={"csrf": csrf_of(ana, path), "version": version,
                                 "markdown": "# lost update"})
    assert stale.status_code == 409 and "changed since you opened it" in stale.text
    page = ana.get(path).text
    assert "<p>The deploy broke checkout.</p>" in page and "edited by ana" in page
    published = ana.post(path + "/mark", data={"csrf": csrf_of(ana, path), "mark": "published",
                                               "version": version_of(page)})
    assert published.status_code == 303
    text = (settings.postmortems_dir / "INC-0001.md").read_text()
    assert "status: published" in text and "published_by: ana" in text
    assert "published_at:" in text and "The deploy broke checkout." in text
    final = ana.get(path).text
    assert "Publish</button>" not in final and "published by ana" in final
    refused = ana.post(path, data={"csrf": csrf_of(ana, path), "version": version_of(
        ana.get(path + "?edit=true").text) if "version" in final else "x", "markdown": "# no"})
    assert refused.status_code == 409
    assert "The deploy broke checkout." in (settings.postmortems_dir / "INC-0001.md").read_text()
    assert ana.get("/postmortems/nosuch.md").status_code == 404


def test_signals_move_on_the_board_as_the_signed_in_person(
    ana: TestClient, settings: Settings,
) -> None:
    no_reason = ana.post("/signals/sig-hostile/accept", data={"csrf": csrf_of(ana, "/signals"),
                                                              "reason": ""})
    assert no_reason.status_code == 422 and "say why" in no_reason.text
    done = ana.post("/signals/sig-hostile/decline",
                    data={"csrf": csrf_of(ana, "/signals"), "reason": "chaos drill",
                          "expect": "new"})
    assert done.status_code == 303
    record = read_record(next(settings.signals_dir.glob("*.md")))
    assert record.status.value == "declined"
    assert record.history[-1].by == "ana" and record.history[-1].reason == "chaos drill"
    stale = ana.post("/signals/sig-hostile/accept",
                     data={"csrf": csrf_of(ana, "/signals"), "reason": "x", "expect": "new"})
    assert stale.status_code == 409 and "was new when you looked" in stale.text
    unknown = ana.post("/signals/sig-nosuch/accept",
                       data={"csrf": csrf_of(ana, "/signals"), "reason": "x"})
    assert unknown.status_code == 404
    assert 'id="signals-declined"' in ana.get("/signals").text


def test_a_console_user_signs_in_with_a_password_and_a_new_password_ends_it(
    runtime: IntakeRuntime, settings: Settings,
) -> None:
    with client_for(runtime) as client:
        wrong = client.post("/login", data={"csrf": login_csrf(client), "username": "uma",
                                            "password": "wrong password!"})
        assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
        nobody = client.post("/login", data={"csrf": login_csrf(client), "username": "zed",
                                             "password": "wrong password!"})
        assert nobody.status_code == 401 and "wrong user name or password" in nobody.text
        sign_in(client, username="uma", password="correct horse battery")
        assert "uma" in client.get("/approvals").text
        assert settings.console_users_file is not None
        add_user(settings.console_users_file, "uma", load_role("approve"), "another long one")
        assert client.get("/approvals").status_code == 303


def test_sign_out_ends_the_session_even_for_a_copied_cookie(ana: TestClient) -> None:
    cookie = ana.cookies[COOKIE]
    out = ana.post("/logout", data={"csrf": csrf_of(ana)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    ana.cookies.clear()
    ana.cookies.set(COOKIE, cookie)
    assert ana.get("/approvals").status_code == 303


def test_a_revoked_token_ends_its_sessions(runtime: IntakeRuntime, ana: TestClient) -> None:
    cookie = ana.cookies[COOKIE]
    rotated = TokenTable([("rita", load_role("read"), READER)])
    with client_for(runtime, rotated) as client:
        client.cookies.set(COOKIE, cookie)
        assert client.get("/approvals").status_code == 303


def test_sign_in_only_returns_to_this_server(runtime: IntakeRuntime) -> None:
    with client_for(runtime) as client:
        for after in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            client.cookies.clear()
            answer = client.post("/login", data={"csrf": login_csrf(client),
                                                 "token": APPROVER, "next": after})
            assert answer.headers["location"] == "/", after
        page = client.get("/login?next=/approvals")
        assert page.status_code == 303 and page.headers["location"] == "/approvals"


def test_repeated_failed_sign_ins_are_slowed_down(runtime: IntakeRuntime) -> None:
    with client_for(runtime) as client:
        for _ in range(5):
            wrong = client.post("/login", data={"csrf": login_csrf(client), "username": "uma",
                                                "password": "guess guess guess"})
            assert wrong.status_code == 401
        right = client.post("/login", data={"csrf": login_csrf(client), "username": "uma",
                                            "password": "correct horse battery"})
        assert right.status_code == 429
        assert "too many failed sign-ins" in right.text
        assert 0 < int(right.headers["retry-after"]) <= 300
        assert COOKIE not in client.cookies


def test_with_no_tokens_configured_the_local_token_serve_prints_signs_in(
    runtime: IntakeRuntime,
) -> None:
    from opsloop.api.auth import serving_tokens

    settings = runtime.settings.model_copy(update={"api_tokens": None})
    tokens, local = serving_tokens(settings)
    assert local is not None and tokens.open
    with client_for(runtime, tokens) as client:
        assert client.get("/").status_code == 303  # reading the API needs no token; this does
        sign_in(client, token=local.token)
        assert f"{local.principal.name} <small>(approve)" in client.get("/approvals").text
        assert client.get("/approvals").text.count(">Approve</button>") == 2
    local.discard()


@pytest.mark.parametrize(("update", "message"), [
    ({"console_secret": SecretStr("short")}, "OPSLOOP_CONSOLE_SECRET is shorter than 32"),
    ({"console_users_file": Path("/nonexistent/users")}, "no such file"),
])
def test_a_bad_console_setting_stops_the_start_naming_it(
    runtime: IntakeRuntime, update: dict[str, Any], message: str,
) -> None:
    from opsloop.web.app import ConsoleConfigError

    broken = IntakeRuntime.__new__(IntakeRuntime)
    broken.settings = runtime.settings.model_copy(update=update)
    with pytest.raises(ConsoleConfigError, match=message):
        create_console_app(broken, load_tokens(runtime.settings))


def test_the_console_url_is_one_people_can_open() -> None:
    from opsloop.web.app import console_url

    assert console_url("127.0.0.1", 8080) == "http://127.0.0.1:8080/"
    assert console_url("0.0.0.0", 9000) == "http://127.0.0.1:9000/"
    assert console_url("::1", 8080) == "http://[::1]:8080/"


def test_a_wrong_console_address_is_an_error_page_and_the_apis_stay_json(
    ana: TestClient,
) -> None:
    for path, status in (("/nosuch", 404), ("/incidents/" + "x" * 200, 422),
                         ("/postmortems/not-markdown.txt", 422)):
        page = ana.get(path)
        assert page.status_code == status, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert "<h1>" in page.text and "Traceback" not in page.text
    api = ana.get("/api/v1/incidents/" + "x" * 200, headers={"Authorization":
                                                               f"Bearer {READER}"})
    assert api.status_code == 422 and api.json()["detail"][0]["loc"] == "path.incident_id"
    assert ana.get("/api/v1/nosuch").json() == {"detail": "Not Found"}


def test_people_act_on_an_incident_from_its_page_under_their_own_name(
    ana: TestClient, runtime: IntakeRuntime,
) -> None:
    page = ana.get("/incidents/INC-0001").text
    assert "Nobody has acknowledged it yet." in page and ">Take over</button>" in page
    csrf = csrf_of(ana, "/incidents/INC-0001")
    done = ana.post("/incidents/INC-0001/people/acknowledge", data={"csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/incidents/INC-0001"
    noted = ana.post("/incidents/INC-0001/people/note",
                     data={"csrf": csrf, "detail": "<b>checking</b> the deploy"})
    assert noted.status_code == 303
    page = ana.get("/incidents/INC-0001").text
    assert "People: acknowledged" in page
    assert "&lt;b&gt;checking&lt;/b&gt; the deploy" in page  # escaped, never markup
    again = ana.post("/incidents/INC-0001/people/acknowledge", data={"csrf": csrf})
    assert again.status_code == 409 and "already acknowledged by ana" in again.text
    state = runtime.read(lambda s: s.people.state("INC-0001"))
    assert [(e.verb.value, e.actor) for e in state.events] == [("acknowledge", "ana"),
                                                               ("note", "ana")]
    listing = ana.get("/fragments/incidents").text
    assert 'data-label="People">acknowledged · ana</td>' in listing
    assert ana.post("/incidents/INC-0001/people/dance", data={"csrf": csrf}).status_code == 404
    assert ana.post("/incidents/INC-0404/people/acknowledge",
                    data={"csrf": csrf}).status_code == 404
