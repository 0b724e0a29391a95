"""Through the real change path: a person's modification keeps the agent's proposal beside
it, the request carries when a person was asked (wall clock), and the war room closes."""

from __future__ import annotations

from datetime import UTC, datetime

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from test_nodes import diagnosed, opened

from opsloop.graph.build import build_change_path
from opsloop.graph.checkpoint import memory_checkpointer
from opsloop.graph.runner import OperateLoop
from opsloop.models import Approval, ApprovalRequest, Incident, IncidentStatus, Verdict
from opsloop.runbooks.markdown import split_front_matter


def test_a_modified_rollback_keeps_the_proposal_and_closes_the_war_room(
        loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "bad_deploy")  # SEV1: a war room opens at triage
    change = build_change_path(memory_checkpointer())
    config: RunnableConfig = {"configurable": {"thread_id": incident.id}}
    before = datetime.now(UTC)
    change.invoke({"incident": diagnosed(incident, rt)}, config, context=rt.context)
    [waiting] = [ApprovalRequest.model_validate(i.value)
                 for i in change.get_state(config).interrupts]
    assert waiting.asked_wall_at is not None and waiting.asked_wall_at >= before
    proposed = waiting.action
    version = str(proposed.params["to_version"])
    answer = Approval(request_id=waiting.id, verdict=Verdict.MODIFY, by="alice",
                      at=rt.context.clock.now(), changes={"to_version": version},
                      waited_seconds=42.0)
    change.invoke(Command(resume=answer.model_dump(mode="json")), config, context=rt.context)
    final: Incident = change.get_state(config).values["incident"]
    [case] = final.actions
    assert case.proposed == proposed  # the agent's own action, kept beside the person's
    assert case.human_wait is not None and case.human_wait.total_seconds() == 42.0
    assert final.status is IncidentStatus.MITIGATED
    room = rt.context.settings.warrooms_dir / f"{incident.id}.md"
    meta, body = split_front_matter(room.read_text(encoding="utf-8"))
    assert meta["status"] == "mitigated" and meta["closed_at"]
    assert "incident mitigated" in body
