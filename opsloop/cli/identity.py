"""Who a CLI decision is recorded under. With no user store, the name given (`--by`, else
OPSLOOP_USER, else the login). With a users file configured (OPSLOOP_CONSOLE_USERS_FILE, the
console's), a name is not enough: OPSLOOP_USER must be a user of that file, the password
(OPSLOOP_PASSWORD, else asked on the terminal) must match its hash, and its role must allow
what is being done, exactly as a console sign-in would."""

from __future__ import annotations

import getpass
import os
import sys

from opsloop.api.auth import GRANTS, Role
from opsloop.cli.render import UserError
from opsloop.settings import Settings
from opsloop.web.users import UserFileError, load_users, verify_password

PASSWORD_ENV = "OPSLOOP_PASSWORD"


def identity(settings: Settings, by: str | None, needed: Role) -> str:
    """The checked name to record a decision under; UserError saying why not."""
    try:
        users = load_users(settings.console_users_file)
    except UserFileError as exc:
        raise UserError(str(exc)) from None
    if not users:
        return by or settings.user
    source = f"the users file {settings.console_users_file} (OPSLOOP_CONSOLE_USERS_FILE)"
    name = settings.user
    if by is not None and by != name:
        raise UserError(f"--by {by!r}: with {source} a decision is recorded under the "
                        f"checked OPSLOOP_USER ({name!r}), not a name given on the command "
                        "line; set OPSLOOP_USER and OPSLOOP_PASSWORD")
    user = users.get(name)
    if user is None:
        raise UserError(f"OPSLOOP_USER={name!r} is not a user of {source}; add it with "
                        "`opsloop users add NAME --role approve`")
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise UserError(f"{name}: no password: set {PASSWORD_ENV} (a users file is "
                            "configured, so decisions are signed in)")
        password = getpass.getpass(f"password for {name}: ")
    if not verify_password(password, user.password_hash):
        raise UserError(f"{name}: wrong password (checked against {source})")
    if needed not in GRANTS[user.role]:
        raise UserError(f"{name} has role {user.role.value}; this needs {needed.value}")
    return name
