"""opsloop's domain types, one definition each."""

from opsloop.models.actions import (
    ActionCase,
    ActionResult,
    ActionStatus,
    Approval,
    ApprovalRequest,
    DecisionOutcome,
    ParamValue,
    PolicyDecision,
    RemediationAction,
    RemediationProposal,
    Verdict,
    Verification,
    VerificationCheck,
)
from opsloop.models.incident import (
    Anomaly,
    AnomalyStatus,
    Diagnosis,
    Evidence,
    Hypothesis,
    Impact,
    Incident,
    IncidentStatus,
    Severity,
    ToolResult,
    ToolStatus,
)
from opsloop.models.learn import ActionItem, AuditRecord, Postmortem, Signal
from opsloop.models.telemetry import (
    ChaosExperiment,
    DeployEvent,
    ExperimentStatus,
    FlagChange,
    FlagState,
    LogLine,
    MetricPoint,
    MetricSeries,
    ServiceInfo,
)
from opsloop.models.timeline import EventKind, TimelineEvent
from opsloop.models.usage import ModelCall, ModelUsage, UsageTotals

__all__ = [
    "ActionCase", "ActionItem", "ActionResult", "ActionStatus", "Anomaly", "AnomalyStatus",
    "Approval", "ApprovalRequest", "AuditRecord", "ChaosExperiment", "DecisionOutcome",
    "DeployEvent", "Diagnosis", "EventKind", "Evidence", "ExperimentStatus", "FlagChange",
    "FlagState", "Hypothesis", "Impact", "Incident", "IncidentStatus", "LogLine", "MetricPoint",
    "MetricSeries", "ModelCall", "ModelUsage", "ParamValue", "PolicyDecision", "Postmortem",
    "RemediationAction", "RemediationProposal", "ServiceInfo", "Severity", "Signal",
    "TimelineEvent", "ToolResult", "ToolStatus", "UsageTotals", "Verdict", "Verification",
    "VerificationCheck",
]
