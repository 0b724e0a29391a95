"""The console in a real browser: Debian's headless Chromium (scripts/install-chromium.sh)
driven by Playwright, against a real uvicorn server on loopback over a work dir where two
incidents wait for a human (built through the real loop).

Set OPSLOOP_CONSOLE_SCREENSHOTS=DIR to keep the screenshots (docs/console/ holds the
README's); they are always taken and checked.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from test_web_console import APPROVER, READER, TOKENS, work_with_two_waiting

from opsloop.api.auth import load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.api.server import ServerThread
from opsloop.policy import load_policies
from opsloop.settings import Settings
from opsloop.web.app import create_console_app

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def server(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(work_dir=tmp_path / "work", api_tokens=SecretStr(TOKENS))
    work_with_two_waiting(tmp_path_factory, settings.work_dir)
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir))
    app = create_console_app(runtime, load_tokens(settings))
    thread = ServerThread(app, "127.0.0.1", 0)
    runtime.start()
    try:
        yield thread.start().url
    finally:
        thread.stop()
        runtime.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    # Checked here, not at import, so `make test` (which deselects slow tests) never needs
    # a browser; where the test runs, a missing one is a failure, never a skip.
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run scripts/install-chromium.sh")
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def sign_in(page: Any, base: str, token: str, then: str = "/") -> None:
    page.goto(base + then)
    assert "/login" in page.url
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(base + then) + "$"))


def approval_card(page: Any, incident: str) -> Any:
    return page.locator("article.approval", has=page.locator(f"a[href='/incidents/{incident}']"))


def shoot(page: Any, name: str, out: Path) -> None:
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 5_000  # a rendered page, not a blank one


def test_people_sign_in_see_decide_and_publish_in_a_real_browser(
    server: str, browser: Any, tmp_path: Path,
) -> None:
    started = time.monotonic()
    shots = tmp_path / "shots"
    shots.mkdir()
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()

    # No session: the page is refused and the person is sent to sign in, then back.
    page.goto(server + "/approvals")
    assert "/login?next=%2Fapprovals" in page.url
    shoot(page, "login", shots)
    page.fill("input[name=token]", "not-a-token-at-all-xxxxxxxx")
    page.click("button[type=submit]")
    assert page.locator("p.error").inner_text() == "unknown or revoked token"
    page.fill("input[name=token]", APPROVER)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/approvals")
    assert page.locator("#who").inner_text().startswith("ana")

    # The incidents, and one incident's page, kept live while another tab decides.
    page.goto(server + "/")
    assert page.locator("#incidents a[href^='/incidents/INC-']").count() == 2
    shoot(page, "incidents", shots)
    watcher = context.new_page()
    watcher.goto(server + "/incidents/INC-0002")
    assert watcher.locator("#incident-status").inner_text() == "awaiting_approval"
    page.goto(server + "/incidents/INC-0001")
    assert page.locator("text=remediation.yaml").first.is_visible()
    shoot(page, "incident", shots)

    # A modification policy refuses is shown, and the approval stays pending.
    page.goto(server + "/approvals")
    card = approval_card(page, "INC-0001")
    card.locator("form.modify textarea").fill("replicas=12")
    card.locator("form.modify button").click()
    assert "has no parameter 'replicas'" in page.locator("p.error").inner_text()
    assert page.locator("article.approval").count() == 2
    shoot(page, "approvals", shots)

    # Approve one, reject the other with a reason (the browser will not send it without one).
    page.goto(server + "/approvals")
    card = approval_card(page, "INC-0001")
    card.locator("form.approve input[name=reason]").fill("the rollback target is right")
    card.locator("form.approve button").click()
    page.wait_for_url(server + "/approvals")
    assert "as ana: incident INC-0001" in page.locator("p.flash").inner_text()
    card = approval_card(page, "INC-0002")
    card.locator("form.reject button").click()
    assert page.locator("article.approval").count() == 1  # required: nothing was sent
    card.locator("form.reject input[name=reason]").fill("this deploy is a known canary")
    card.locator("form.reject button").click()
    page.wait_for_url(server + "/approvals")
    assert page.locator("#no-approvals").is_visible()
    # The other tab follows without a reload.
    watcher.locator("#incident-status", has_text="rejected").wait_for(timeout=15_000)
    assert watcher.locator("text=this deploy is a known canary").first.is_visible()

    # Edit and publish the postmortem draft, once its incident's run has finished.
    page.goto(server + "/incidents/INC-0001")
    page.locator("#incident-status", has_text="mitigated").wait_for(timeout=60_000)
    page.goto(server + "/postmortems/INC-0001.md")
    page.click("text=Edit")
    page.fill("textarea[name=markdown]",
              "# INC-0001\n\n## Summary\n\nA bad deploy of checkout, rolled back.\n")
    page.click("button:has-text('Save')")
    assert "A bad deploy of checkout, rolled back." in page.locator(
        "article.markdown-body").inner_text()
    page.click("button:has-text('Publish')")
    assert page.locator("#pm-status").inner_text() == "published"
    assert "published by ana" in page.locator("main").inner_text()
    shoot(page, "postmortem", shots)

    # CSRF: a POST with the session cookie but no form token is refused.
    refused = page.request.post(server + "/approvals/APR-none/approve",
                                form={"reason": "forged"})
    assert refused.status == 403 and "CSRF" in refused.text()

    page.goto(server + "/signals")
    shoot(page, "signals", shots)

    # A phone: a reader sees the list as cards, and no decision buttons.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    sign_in(small, server, READER)
    assert small.locator("#incidents tr").count() >= 2
    shoot(small, "incidents-phone", shots)
    small.goto(server + "/approvals")
    assert small.locator("form.approve").count() == 0
    phone.close()

    page.click("text=Sign out")
    page.goto(server + "/")
    assert "/login" in page.url
    context.close()

    keep = os.environ.get("OPSLOOP_CONSOLE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copy(shot, Path(keep) / shot.name)
    print(f"browser walk: {time.monotonic() - started:.1f} s")
