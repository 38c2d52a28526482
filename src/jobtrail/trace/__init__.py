"""trace: where is a job, or what became of it, with the evidence from every store."""

from __future__ import annotations

from jobtrail.trace.fate import (
    ArchiveFacts,
    BrokerFacts,
    Evidence,
    MainFacts,
    ResultFacts,
    TraceResult,
    classify,
)
from jobtrail.trace.gather import TraceSources, gather_evidence, trace_job

__all__ = [
    "ArchiveFacts",
    "BrokerFacts",
    "Evidence",
    "MainFacts",
    "ResultFacts",
    "TraceResult",
    "TraceSources",
    "classify",
    "gather_evidence",
    "trace_job",
]
