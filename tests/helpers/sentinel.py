"""A real Redis Sentinel deployment on loopback: one master, one replica, one sentinel.

Each is a redis-server process on a free port (`redis-server --sentinel` for the
sentinel), its config and data under the test's tmp_path. `failover()` runs
`SENTINEL FAILOVER` and returns once the replica is the writable master and the
old master follows it again (so a second failover can happen); `kill_master()`
SIGKILLs the master and waits for Sentinel to promote the replica.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from jobtrail.embedded import find_redis_server, free_port

MASTER_NAME = "mymaster"
#: Sentinel calls a silent master down after this long (a test's SIGKILL).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000


def _wait(what: str, check: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


@dataclass
class Node:
    """One redis-server process."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    clients: dict[int, redis.Redis] = field(default_factory=dict)

    def client(self, db: int = 0) -> redis.Redis:
        """This node's client for *db*, one per db, closed by `close_clients`.

        Polling helpers call this many times a second: a client a call left sockets
        for the garbage collector, and a ResourceWarning at the session's end made
        pytest exit 1 (`filterwarnings = error`) with every test passed.
        """
        if db not in self.clients:
            self.clients[db] = redis.Redis(port=self.port, db=db, decode_responses=True,
                                           socket_timeout=2)
        return self.clients[db]

    def close_clients(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class SentinelCluster:
    """A master, a replica and a sentinel; the master moves on failover."""

    tmp: Path
    nodes: dict[int, Node] = field(default_factory=dict)
    sentinel: Node | None = None
    killed: list[int] = field(default_factory=list)

    def _start(self, name: str, conf: str | None, *args: str) -> Node:
        port = free_port()
        log = self.tmp / f"{name}-{port}.log"
        data = self.tmp / f"{name}-{port}"
        data.mkdir()
        proc = subprocess.Popen(
            [str(find_redis_server()), *([conf] if conf else []), "--port", str(port),
             "--bind", "127.0.0.1", "--dir", str(data), "--logfile", str(log),
             *([] if "--sentinel" in args else ["--save", "", "--appendonly", "no"]), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        node = Node(port, proc, log)
        _wait(f"{name} on port {port}", lambda: node.client().ping())
        return node

    def start(self) -> SentinelCluster:
        master = self._start("master", None)
        replica = self._start("replica", None, "--replicaof", "127.0.0.1", str(master.port))
        self.nodes = {master.port: master, replica.port: replica}
        conf = self.tmp / "sentinel.conf"
        conf.write_text(
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n")
        self.sentinel = self._start("sentinel", str(conf), "--sentinel")
        self.wait_ready()
        return self

    def sentinel_client(self) -> redis.Redis:
        assert self.sentinel is not None
        return self.sentinel.client()

    def master_port(self) -> int:
        _, port = self.sentinel_client().sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def master(self) -> Node:
        return self.nodes[self.master_port()]

    def replica(self) -> Node:
        return next(n for p, n in self.nodes.items() if p != self.master_port())

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until the master is writable and its replica synced and known to Sentinel."""
        def ready() -> bool:
            master = self.master()
            if master.client().info("replication")["role"] != "master":
                return False
            replicas = self.sentinel_client().sentinel_slaves(MASTER_NAME)
            good = [r for r in replicas if int(r["port"]) in self.nodes
                    and int(r["port"]) not in self.killed
                    and "s_down" not in str(r.get("flags", ""))
                    and r.get("master-link-status") == "ok"]
            return bool(good) and int(master.client().info("replication")
                                      ["connected_slaves"]) >= 1
        _wait("a synced replica known to Sentinel", ready, timeout_s)

    def failover(self, demote: bool = True,
                 meanwhile: Callable[[int], None] | None = None) -> float:
        """`SENTINEL FAILOVER`; return the seconds until the new master took a write.

        With *demote* the old master is made a replica as soon as the failover ended
        (saves ~20 s a failover); without it the old master stays a writable master
        until Sentinel converts it by itself (~10-20 s), the window in which a client
        still pooled on it could write to a master Sentinel replaced. *meanwhile* is
        called with the old master's port once the new master took a write and before
        the old one is demoted: what it writes there is discarded by the demotion.
        """
        before = self.master_port()
        started = time.monotonic()
        self.sentinel_client().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        self._wait_new_master(before)
        took = time.monotonic() - started
        if meanwhile is not None:
            meanwhile(before)
        if demote:
            self._demote(before)
        self.wait_ready()
        return took

    def _demote(self, port: int) -> None:
        """Make the old master on *port* follow the new one now, as an operator would.

        Sentinel does it by itself (the same commands), but only once the node has
        reported the master role for 4 publish periods and on its next INFO (every
        10 s; Redis 6.2 has no SENTINEL DEBUG to shorten either): about 20 s per
        failover of waiting in wait_ready(). Sentinel then finds it a replica already.
        """
        node = self.nodes[port]
        # only once the failover ended (switch-master): during it Sentinel already names
        # the promoted replica, and a master demoted under it can flip the roles back
        def switched() -> bool:
            state = self.sentinel_client().sentinel_master(MASTER_NAME)
            return (int(state["port"]) != port
                    and "failover_in_progress" not in str(state.get("flags", "")))
        _wait("the end of the failover", switched)
        if not node.alive():
            return
        new_master = self.master_port()
        client = node.client()
        if client.info("replication")["role"] != "master":
            return
        # Sentinel's own reconfiguration: REPLICAOF and CLIENT KILL TYPE normal in one
        # MULTI, so a client blocked in BRPOP sees its connection closed (the
        # UNBLOCKED reply of a bare REPLICAOF would reach it as a ResponseError)
        with client.pipeline(transaction=True) as pipe:
            pipe.replicaof("127.0.0.1", str(new_master))
            pipe.client_kill_filter(_type="normal")
            pipe.execute()

    def kill_master(self) -> float:
        """SIGKILL the master; return the seconds until Sentinel's new master took a write."""
        before = self.master_port()
        started = time.monotonic()
        self.nodes[before].proc.send_signal(signal.SIGKILL)
        self.nodes[before].proc.wait(timeout=10)
        self.killed.append(before)
        self._wait_new_master(before, timeout_s=30)
        return time.monotonic() - started

    def restart(self, port: int) -> None:
        """Start the killed node on *port* again, as a replica of the master Sentinel names.

        A node without persistence comes back empty: started as a master, it could
        win the role back if Sentinel's failover is aborted (a loaded machine, the
        4 s failover-timeout), and every replica would then resync from it empty,
        losing acknowledged writes. Redis's replication docs ("Safety of replication
        when master has persistence turned off") say to never restart it as a
        master; operators (and docs/operations.md's runbook) start it with
        --replicaof the current master, as done here.
        """
        old = self.nodes[port]
        old.close_clients()
        data = self.tmp / f"{'master' if 'master' in old.log.name else 'replica'}-{port}"
        master = self.master_port()
        proc = subprocess.Popen(
            [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir",
             str(data), "--logfile", str(old.log), "--save", "", "--appendonly", "no",
             "--replicaof", "127.0.0.1", str(master)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.nodes[port] = Node(port, proc, old.log)
        self.killed.remove(port)
        _wait(f"node {port} back", lambda: self.nodes[port].client().ping())

    def kill_master_and_bring_it_back(self) -> float:
        """kill_master(), then restart the old master (it rejoins as a replica)."""
        before = self.master_port()
        took = self.kill_master()
        self.restart(before)
        self.wait_ready()
        return took

    def _wait_new_master(self, before: int, timeout_s: float = 20.0) -> None:
        def moved() -> bool:
            port = self.master_port()
            if port == before:
                return False
            node = self.nodes[port]
            node.client().set("jobtrail-test:failover-probe", "1")
            return True
        _wait("the new master", moved, timeout_s)

    def url(self, db: int) -> str:
        """Celery's form of the Sentinel URL of DB *db*."""
        assert self.sentinel is not None
        return f"sentinel://127.0.0.1:{self.sentinel.port}/{db}"

    def stop(self) -> None:
        for node in [*self.nodes.values(), *([self.sentinel] if self.sentinel else [])]:
            node.close_clients()
            if node.alive():
                node.proc.terminate()
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()


@pytest.fixture
def sentinel_cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    """A started master + replica + sentinel; stopped afterwards."""
    cluster = SentinelCluster(tmp_path / "sentinel")
    cluster.tmp.mkdir()
    try:
        yield cluster.start()
    finally:
        cluster.stop()
