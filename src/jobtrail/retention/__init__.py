"""Retention: named policies, purge with archive and tombstones, restore, and the audit.

Invariant: a record leaves the main DB only after its archive row is
committed and verified; see purge.py for the protocol.
"""

from __future__ import annotations

from jobtrail.retention.audit import history
from jobtrail.retention.policy import (
    ADHOC,
    RetentionPolicy,
    policies_from_settings,
    select,
)
from jobtrail.retention.purge import PurgeReport, PurgeStep, count_candidates, purge
from jobtrail.retention.restore import RestoreReport, restore_ids, restore_matching

__all__ = [
    "ADHOC",
    "PurgeReport",
    "PurgeStep",
    "RestoreReport",
    "RetentionPolicy",
    "count_candidates",
    "history",
    "policies_from_settings",
    "purge",
    "restore_ids",
    "restore_matching",
    "select",
]
