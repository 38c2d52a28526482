"""trace: where is a job, or what became of it, with the evidence from every store."""

from __future__ import annotations

from jobtrail.trace.facts import (
    ArchiveFacts,
    BatchFacts,
    BrokerFacts,
    Evidence,
    MainFacts,
    ResultFacts,
)
from jobtrail.trace.fate import TraceResult, classify
from jobtrail.trace.gather import TraceSources, gather_evidence, trace_job

__all__ = [
    "ArchiveFacts",
    "BatchFacts",
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
