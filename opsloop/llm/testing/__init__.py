"""Test doubles for the model path: a scripted OpenAI-compatible server on loopback."""

from opsloop.llm.testing.fake_model import FakeModel
from opsloop.llm.testing.hostile import Hostile, HostileModel
from opsloop.llm.testing.server import Exchange, Fault, ScriptedServer

__all__ = ["Exchange", "FakeModel", "Fault", "Hostile", "HostileModel", "ScriptedServer"]
