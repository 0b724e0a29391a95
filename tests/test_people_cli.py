"""People's verbs from the terminal: the same checks as the API, and a decision's name
checked against the users file when one is configured (not a free `--by`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_support import work_awaiting_approval

from opsloop.api.auth import Role
from opsloop.cli import main
from opsloop.web.users import add_user

PASSWORD = "correct horse battery"


@pytest.fixture
def work(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
         monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.delenv("OPSLOOP_CONSOLE_USERS_FILE", raising=False)
    monkeypatch.delenv("OPSLOOP_PASSWORD", raising=False)
    work = tmp_path / "work"
    return work, work_awaiting_approval(tmp_path_factory, work)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_ack_note_takeover_and_show(capsys: pytest.CaptureFixture[str],
                                    work: tuple[Path, str]) -> None:
    path, incident = work
    wd = ["--work-dir", str(path)]
    code, out, _ = run(capsys, "ack", incident, "--by", "ana", *wd)
    assert code == 0 and f"{incident} acknowledged by ana" in out
    code, _, err = run(capsys, "ack", incident, "--by", "ray", *wd)
    assert code == 1 and "already acknowledged by ana" in err and "Traceback" not in err
    assert run(capsys, "note", incident, "rolled back by hand at 14:02", "--by", "ana", *wd)[0] == 0
    assert run(capsys, "assign", incident, "ray", "--by", "ana", *wd)[0] == 0
    code, out, _ = run(capsys, "takeover", incident, "--by", "ray", "--json", *wd)
    assert code == 0 and json.loads(out)["people"]["taken_over_by"] == "ray"
    code, _, err = run(capsys, "resolve", incident, "--by", "ray", *wd)
    assert code == 1 and "approvals are still waiting" in err
    code, out, _ = run(capsys, "show", incident, *wd)
    assert "driven by ray (automation stopped)" in out and "rolled back by hand" in out
    code, out, _ = run(capsys, "incidents", "--json", *wd)
    assert json.loads(out)[0]["people"] == "acknowledged · ray · driven by ray"
    code, _, err = run(capsys, "ack", "INC-9999", *wd)
    assert code == 1 and "INC-9999" in err


def test_with_a_users_file_a_decision_is_signed_in_not_named(
    capsys: pytest.CaptureFixture[str], work: tuple[Path, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, incident = work
    users = tmp_path / "users"
    add_user(users, "ana", Role.APPROVE, PASSWORD)
    add_user(users, "vic", Role.READ, PASSWORD)
    monkeypatch.setenv("OPSLOOP_CONSOLE_USERS_FILE", str(users))
    wd = ["--work-dir", str(path)]
    monkeypatch.setenv("OPSLOOP_USER", "ana")
    code, _, err = run(capsys, "ack", incident, "--by", "mallory", *wd)
    assert code == 1 and "--by 'mallory'" in err and "OPSLOOP_USER" in err
    code, _, err = run(capsys, "ack", incident, *wd)  # stdin is not a terminal here
    assert code == 1 and "OPSLOOP_PASSWORD" in err
    monkeypatch.setenv("OPSLOOP_PASSWORD", "not the password")
    code, _, err = run(capsys, "ack", incident, *wd)
    assert code == 1 and "wrong password" in err
    monkeypatch.setenv("OPSLOOP_USER", "vic")
    monkeypatch.setenv("OPSLOOP_PASSWORD", PASSWORD)
    code, _, err = run(capsys, "ack", incident, *wd)
    assert code == 1 and "vic has role read" in err
    monkeypatch.setenv("OPSLOOP_USER", "nobody")
    code, _, err = run(capsys, "approve", f"{incident}-incident-a1", *wd)
    assert code == 1 and "'nobody' is not a user" in err
    monkeypatch.setenv("OPSLOOP_USER", "ana")
    code, out, _ = run(capsys, "ack", incident, *wd)
    assert code == 0 and "by ana" in out
    code, out, err = run(capsys, "reject", f"{incident}-incident-a1", "--reason", "by hand", *wd)
    assert code == 0, err
    assert "rejected by ana" in out
