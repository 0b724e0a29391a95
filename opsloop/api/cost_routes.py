"""Cost routes over the API (filled in by the cost work; registered in app.py)."""

from __future__ import annotations

from fastapi import APIRouter

from opsloop.api.access import AUTH_RESPONSES

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)
