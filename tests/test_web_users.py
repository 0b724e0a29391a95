"""The console's user file: scrypt hashes, never passwords; errors that name the file and
line; `python -m opsloop.web.users add` reading the password from stdin."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from opsloop.api.auth import Role
from opsloop.web import users
from opsloop.web.users import UserFileError, add_user, load_users, verify_password

PASSWORD = "correct horse battery"


def test_a_user_is_kept_as_a_salted_scrypt_hash_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "users"
    add_user(path, "uma", Role.APPROVE, PASSWORD)
    add_user(path, "otto", Role.READ, PASSWORD)
    text = path.read_text()
    assert PASSWORD not in text and text.count("scrypt$16384$8$1$") == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    found = load_users(path)
    assert found["uma"].role is Role.APPROVE and found["otto"].role is Role.READ
    assert found["uma"].password_hash != found["otto"].password_hash  # salted
    assert verify_password(PASSWORD, found["uma"].password_hash)
    assert not verify_password(PASSWORD + "!", found["uma"].password_hash)
    assert not verify_password(PASSWORD, "scrypt$broken")


def test_adding_a_user_again_replaces_its_line_and_changes_its_generation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "users"
    add_user(path, "uma", Role.READ, PASSWORD)
    before = load_users(path)["uma"]
    add_user(path, "uma", Role.ADMIN, "another long password")
    after = load_users(path)["uma"]
    assert path.read_text().count("uma:") == 1
    assert after.role is Role.ADMIN and after.generation != before.generation


@pytest.mark.parametrize(("line", "message"), [
    ("uma:approve", "line 2: expected name:role:scrypt$..."),
    ("uma:boss:scrypt$1$2$3$4$5", "line 2 (uma): unknown role 'boss'"),
    ("uma:read:plaintext", "line 2 (uma): the password hash is not scrypt"),
    ("bad name:read:scrypt$1$2$3$4$5", "line 2: the name 'bad name' must be"),
])
def test_a_broken_user_file_is_named_by_file_and_line(tmp_path: Path, line: str,
                                                      message: str) -> None:
    path = tmp_path / "users"
    path.write_text("# console users\n" + line + "\n")
    with pytest.raises(UserFileError) as refused:
        load_users(path)
    assert message in str(refused.value)
    assert str(path) in str(refused.value)
    with pytest.raises(UserFileError):
        add_user(path, "new", Role.READ, PASSWORD)  # never extends a broken file


def test_a_missing_file_and_a_short_password_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserFileError, match="no such file"):
        load_users(tmp_path / "nope")
    assert load_users(None) == {}
    with pytest.raises(UserFileError, match="shorter than 12"):
        add_user(tmp_path / "users", "uma", Role.READ, "short")


def test_the_command_reads_the_password_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "users"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert users.main(["add", "uma", "--role", "approve", "--file", str(path)]) == 0
    assert verify_password(PASSWORD, load_users(path)["uma"].password_hash)
    assert "uma (approve) written to" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert users.main(["add", "uma", "--role", "read", "--file", str(path)]) == 2
    assert "shorter than 12" in capsys.readouterr().err
    assert load_users(path)["uma"].role is Role.APPROVE  # unchanged
    monkeypatch.delenv("OPSLOOP_CONSOLE_USERS_FILE", raising=False)
    assert users.main(["add", "uma", "--role", "read"]) == 2
    assert "no users file" in capsys.readouterr().err


def test_the_cli_verb_adds_to_the_configured_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from opsloop.settings import Settings

    parser = argparse.ArgumentParser()
    users.register(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(["users", "add", "otto", "--role", "read"])
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    path = tmp_path / "users"
    assert args.handler(args, Settings(console_users_file=path), None) == 0
    assert load_users(path)["otto"].role is Role.READ
