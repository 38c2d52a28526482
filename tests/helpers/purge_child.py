"""A purge in its own process that SIGKILLs itself at a chosen protocol step (crash tests).

Run: python purge_child.py '<json>' with keys main_url, results_url, archive_url,
table_prefix, older_than_s, batch_size, chunk, kill_step (a PurgeStep value)
and kill_at (the n-th time that step is reached). Imports only jobtrail.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Sequence

from jobtrail.connections import connect
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.retention import PurgeStep, RetentionPolicy, purge
from jobtrail.store import ArchiveStore, RetentionStore


def main() -> None:
    args = json.loads(sys.argv[1])
    store = RetentionStore(connect(args["main_url"]), connect(args["results_url"]), KeySpace())
    archive = ArchiveStore(args["archive_url"], table_prefix=args["table_prefix"])
    seen: Counter[str] = Counter()

    def hook(step: PurgeStep, ids: Sequence[str]) -> None:
        seen[step.value] += 1
        if step.value == args["kill_step"] and seen[step.value] == args["kill_at"]:
            os.kill(os.getpid(), signal.SIGKILL)

    purge(store, archive, RetentionPolicy("crash", (JobStatus.COMPLETED,), args["older_than_s"]),
          tombstone_ttl_s=3600, batch_size=args["batch_size"], redis_chunk_size=args["chunk"],
          on_progress=hook)


if __name__ == "__main__":
    main()
