"""Benchmark: monitor snapshot of a 1,000,000-key DB against `redis-cli --scan`, and diff time.

Run: .venv/bin/python bench/bench_monitor.py [--keys 1000000] [--batch-size 1000]

On one private redis-server (no persistence) holding `--keys` job-record
hashes, half of them with a TTL:

1. snapshot: keys per second of monitor.snapshot.take_snapshot (type, TTL and
   job status of every key) and the process's peak RSS (bytes);
2. baseline: keys per second of `redis-cli --scan` on the same DB (names only,
   redis-cli's default COUNT); the ratio snapshot / baseline, target >= 1.0;
3. diff: seconds to diff two snapshots of the DB (the second after changing
   1% of the keys: status, TTL, deletions, additions), target < 3 s.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobtrail.embedded import EmbeddedRedis, find_redis_server  # noqa: E402
from jobtrail.keys import KeySpace  # noqa: E402
from jobtrail.monitor.diff import diff  # noqa: E402
from jobtrail.monitor.snapshot import take_snapshot  # noqa: E402

# Fills the DB with `count` job hashes in one server-side loop; odd ones get a TTL.
POPULATE = """
local prefix, first, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = first, first + count - 1 do
    local key = prefix .. string.format('%08d-0000-4000-8000-000000000000', i)
    redis.call('HSET', key, 'id', i, 'status', 'completed', 'problem', 'x^2 - 5x + 6 = 0',
               'created_at', '1700000000.5', 'attempts', '1')
    if i % 2 == 1 then redis.call('EXPIRE', key, 86400) end
end
return count
"""

# Changes 1% of the keys: a status change, a TTL reset, a deletion and an addition each.
CHURN = """
local prefix, step, total = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 0, total - 1, step do
    local key = prefix .. string.format('%08d-0000-4000-8000-000000000000', i)
    redis.call('HSET', key, 'status', 'failed')
    redis.call('EXPIRE', prefix .. string.format('%08d-0000-4000-8000-000000000000', i + 1), 3600)
    redis.call('DEL', prefix .. string.format('%08d-0000-4000-8000-000000000000', i + 2))
    redis.call('HSET', prefix .. string.format('%08d-0000-4000-8000-00000000000a', i), 'status',
               'pending')
end
return 1
"""


def peak_rss_bytes() -> int:
    """Return this process's peak resident set size in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def populate(server: EmbeddedRedis, db: int, count: int) -> None:
    """Create *count* job hashes in DB *db*, 50,000 per Lua call."""
    client = server.client(db)
    prefix = KeySpace().job("")
    step = 50_000
    for first in range(0, count, step):
        client.eval(POPULATE, 0, prefix, first, min(step, count - first))
    client.close()


def redis_cli_scan_rate(server: EmbeddedRedis, db: int) -> tuple[int, float]:
    """Return (keys, seconds) of `redis-cli --scan` over DB *db*, output discarded."""
    cli = str(Path(find_redis_server()).with_name("redis-cli"))
    started = time.perf_counter()
    out = subprocess.run([cli, "-p", str(server.port), "-n", str(db), "--scan"],
                         check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    return out.stdout.count(b"\n"), elapsed


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    opts = parser.parse_args()
    db = 10
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start("--save", "", "--appendonly", "no")
        try:
            t0 = time.perf_counter()
            populate(server, db, opts.keys)
            print(f"populated {opts.keys:,} hashes in {time.perf_counter() - t0:.1f} s")
            rss_before = peak_rss_bytes()
            client = server.client(db)
            cli_keys, cli_s = redis_cli_scan_rate(server, db)
            t0 = time.perf_counter()
            first = take_snapshot(client, db="main", batch_size=opts.batch_size)
            snap_s = time.perf_counter() - t0
            rss_after = peak_rss_bytes()
            cli_keys2, cli_s2 = redis_cli_scan_rate(server, db)
            cli_rate = (cli_keys + cli_keys2) / (cli_s + cli_s2)
            rate = len(first.entries) / snap_s
            print(f"snapshot: {len(first.entries):,} keys in {snap_s:.2f} s = {rate:,.0f} keys/s"
                  f" (type, TTL, status); peak RSS {rss_after / 2**20:,.0f} MiB"
                  f" (before: {rss_before / 2**20:,.0f} MiB)")
            print(f"redis-cli --scan: {cli_keys:,} keys in {cli_s:.2f} s and {cli_s2:.2f} s"
                  f" = {cli_rate:,.0f} keys/s (names only)")
            print(f"ratio snapshot / redis-cli: {rate / cli_rate:.2f}x (target >= 1.0)")
            client.eval(CHURN, 0, KeySpace().job(""), 100, opts.keys)
            second = take_snapshot(client, db="main", batch_size=opts.batch_size)
            t0 = time.perf_counter()
            changes = diff(first, second, keys=KeySpace())
            diff_s = time.perf_counter() - t0
            print(f"diff of two {len(first.entries):,}-key snapshots: {diff_s:.2f} s"
                  f" (target < 3 s); {changes.counts()}")
            print(f"peak RSS at the end: {peak_rss_bytes() / 2**20:,.0f} MiB")
            client.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
