"""Request bodies, one way for every route: JSON only (415), read with a size limit (413),
decoded (400) and validated into a model with each problem named by field (422)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from opsloop.alertmanager import FieldError, PayloadError, decode_json

MAX_ERRORS_SHOWN = 50
Model = TypeVar("Model", bound=BaseModel)


def loc_text(parts: tuple[Any, ...] | list[Any], prefix: str = "") -> str:
    """A location like `body.set.replicas` or `alerts[3].labels`."""
    out = prefix
    for part in parts:
        if part == "[key]":  # pydantic's step into a dict key: the key itself follows
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def field_errors(exc: ValidationError, prefix: str) -> list[FieldError]:
    return [FieldError(loc_text(e["loc"], prefix) or prefix, e["msg"])
            for e in exc.errors(include_url=False, include_input=False)]


def error_detail(errors: list[FieldError]) -> list[dict[str, str]]:
    shown = [e.as_dict() for e in errors[:MAX_ERRORS_SHOWN]]
    if len(errors) > MAX_ERRORS_SHOWN:
        shown.append({"loc": errors[0].loc.split(".")[0].split("[")[0],
                      "msg": f"and {len(errors) - MAX_ERRORS_SHOWN} more"})
    return shown


async def payload_error(request: Request, exc: Exception) -> JSONResponse:
    """The app's answer to a PayloadError raised anywhere while handling a request."""
    assert isinstance(exc, PayloadError)
    return JSONResponse(status_code=exc.status, content={"detail": error_detail(exc.errors)})


def require_json(request: Request) -> None:
    """Refuse a body declared as anything but JSON: the types a browser may send to another
    site without asking first (text/plain, forms) are exactly the ones refused here."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    mime = declared.split(";", 1)[0].strip().lower()
    if mime == "application/json" or (mime.startswith("application/")
                                      and mime.endswith("+json")):
        return
    raise PayloadError(415, [FieldError("headers.content-type",
                                        f"{declared[:100]!r} is not JSON: send "
                                        "Content-Type: application/json")])


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (a declared length is trusted
    only to refuse early, never to accept)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadError(413, [FieldError("body", f"{declared} bytes; at most {limit}")])
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadError(413, [FieldError("body", f"more than {limit} bytes")])
        chunks.append(chunk)
    return b"".join(chunks)


async def json_model(request: Request, model: type[Model], limit: int) -> Model:
    """The body as `model`; an empty body is refused."""
    found = await optional_json_model(request, model, limit)
    if found is None:
        raise PayloadError(422, [FieldError("body", "a JSON object is required")])
    return found


async def optional_json_model(request: Request, model: type[Model], limit: int) -> Model | None:
    """The body as `model`, or None for an empty body."""
    require_json(request)
    raw = await read_body(request, limit)
    if not raw.strip():
        return None
    data = decode_json(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError(422, field_errors(exc, "body")) from None
