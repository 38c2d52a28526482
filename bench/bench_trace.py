"""Benchmark: `trace` latency with 1,000,000 jobs in the main DB and 1,000,000 archive rows.

Run: .venv/bin/python bench/bench_trace.py [--jobs 1000000] [--samples 1000]

Seeds N completed job records (through the store's own create and transition
scripts, pipelined) and N archive rows of other ids (SQLite, the default
archive), then traces `--samples` random ids, half live and half archived,
and prints p50 and p99 in milliseconds. Baseline in the same run: the latency
of one pipelined HGETALL + PTTL round trip with raw redis-py (the floor of any
trace). Target: p99 < 10 ms, no SCAN on this path.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile, write_report  # noqa: E402
from jobtrail.embedded import EmbeddedRedis  # noqa: E402
from jobtrail.keys import KeySpace  # noqa: E402
from jobtrail.store.archive import ArchiveStore, seal  # noqa: E402
from jobtrail.trace import TraceSources, trace_job  # noqa: E402
from jobtrail.trace.gather import archive_lookup  # noqa: E402

BATCH = 5000


def seed_redis(server: EmbeddedRedis, n: int) -> list[str]:
    """Write n completed job records the way the store does (hash, indexes, events)."""
    client = server.client(10)
    keys = KeySpace()
    ids = [f"job-{i:07d}" for i in range(n)]
    now = time.time()
    for start in range(0, n, BATCH):
        with client.pipeline(transaction=False) as pipe:
            for i, job_id in enumerate(ids[start:start + BATCH], start):
                at = now - n + i
                pipe.hset(keys.job(job_id), mapping={
                    "id": job_id, "problem": "1 + 1", "kind": "arithmetic",
                    "status": "completed", "created_at": repr(at), "started_at": repr(at),
                    "finished_at": repr(at + 0.01), "worker": "w1@host", "attempts": "1",
                    "result": '{"latex":"2","steps":[],"text":"2"}', "error": "",
                    "version": "2"})
                pipe.zadd(keys.jobs(), {job_id: at})
                pipe.zadd(keys.jobs_by_status("completed"), {job_id: at + 0.01})
                pipe.xadd(keys.events(job_id), {"type": "created", "at": repr(at)})
            pipe.execute()
    return ids


def seed_archive(archive: ArchiveStore, n: int) -> list[str]:
    """Write n archive rows for ids that are not in the main DB."""
    ids = [f"old-{i:07d}" for i in range(n)]
    now = time.time()
    for start in range(0, n, BATCH):
        archive.put_many([seal(job_id, {"id": job_id, "status": "completed"},
                               [{"event_id": "1-0", "type": "created"}], None,
                               purged_at=now, policy="bench", run_id="r")
                          for job_id in ids[start:start + BATCH]])
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jobtrail-bench-trace-"))
    server = EmbeddedRedis(work / "redis")
    server.start("--appendonly", "no", "--save", "")
    try:
        t = time.perf_counter()
        live = seed_redis(server, args.jobs)
        archive = ArchiveStore(f"sqlite:///{work}/archive.db")
        archive.ensure_schema()
        archived = seed_archive(archive, args.jobs)
        print(f"seeded {args.jobs} jobs and {args.jobs} archive rows in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        src = TraceSources(main=server.client(10), broker=server.client(11),
                           results=server.client(12), keys=KeySpace(),
                           visibility_timeout_s=3600, result_expires_s=86400,
                           find_archived=archive_lookup(lambda: archive))
        rng = random.Random(1)
        sample = [rng.choice(live) if i % 2 else rng.choice(archived)
                  for i in range(args.samples)]
        for job_id in sample[:20]:
            trace_job(src, job_id)  # warm connections and caches
        timings = []
        fates: dict[str, int] = {}
        for job_id in sample:
            t = time.perf_counter()
            fate = trace_job(src, job_id).fate.value
            timings.append((time.perf_counter() - t) * 1000)
            fates[fate] = fates.get(fate, 0) + 1
        raw, keys = server.client(10), KeySpace()
        floor = []
        for job_id in sample:
            t = time.perf_counter()
            with raw.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.job(job_id))
                pipe.pttl(keys.tombstone(job_id))
                pipe.execute()
            floor.append((time.perf_counter() - t) * 1000)
        timings.sort()
        floor.sort()
        report = {"jobs": args.jobs, "archive_rows": args.jobs, "samples": args.samples,
                  "fates": fates, "p50_ms": statistics.median(timings),
                  "p99_ms": percentile(timings, 0.99),
                  "raw_roundtrip_p50_ms": statistics.median(floor),
                  "raw_roundtrip_p99_ms": percentile(floor, 0.99)}
    finally:
        server.stop()
    write_report("bench_trace", report)
    print(f"\ntrace p50 {report['p50_ms']:.2f} ms, p99 {report['p99_ms']:.2f} ms "
          f"(target p99 < 10 ms); raw round trip p50 {report['raw_roundtrip_p50_ms']:.2f} ms")


if __name__ == "__main__":
    main()
