"""TcpProxy: a loopback TCP proxy that can make every existing connection half-open.

`black_hole()` stops forwarding on every connection open at that moment, in
both directions, and never closes or resets them: the client's writes are
still accepted by the kernel and its reads never return, as behind a NAT or
firewall that forgot the flow. Connections opened afterwards are forwarded
normally, so a client that gives up and reconnects works again.

One selector thread does the accepting and the forwarding; stdlib only.
Note that TCP keepalive cannot notice this black hole (the proxy's kernel
answers the probes): only a read deadline (a socket timeout) or an
application-level check does, which is what the half-open tests exercise.
"""

from __future__ import annotations

import selectors
import socket
import threading
from dataclasses import dataclass, field

__all__ = ["TcpProxy"]

#: Bytes read per recv() on a forwarded connection.
CHUNK_BYTES = 65_536


@dataclass(eq=False)
class _Pair:
    """One proxied connection: the client's socket and the upstream one."""

    client: socket.socket
    upstream: socket.socket
    frozen: bool = False
    peers: dict[socket.socket, socket.socket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.peers = {self.client: self.upstream, self.upstream: self.client}

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            try:
                sock.close()
            except OSError:
                pass


class TcpProxy:
    """Forward 127.0.0.1:<port> to *upstream_host*:*upstream_port* until close().

    Args:
        upstream_host: Where connections go (a real redis-server).
        upstream_port: Its port.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    def url(self, db: int) -> str:
        """Return the redis:// URL of DB *db* through the proxy."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def black_hole(self) -> int:
        """Stop forwarding on every connection open now (never closing it); return how many.

        When this returns, no further byte is forwarded on those connections.
        """
        with self._lock:
            count = 0
            for pair in self._pairs:
                if pair.frozen:
                    continue
                pair.frozen = True
                count += 1
                for sock in (pair.client, pair.upstream):
                    try:
                        self._selector.unregister(sock)
                    except (KeyError, ValueError):
                        pass
            return count

    def close_black_holed(self) -> int:
        """Close every black-holed connection (both sides see the close); return how many.

        What a NAT that finally resets the forgotten flows does: the client's
        blocked read returns at once instead of at its socket timeout.
        """
        with self._lock:
            frozen = [p for p in self._pairs if p.frozen]
            for pair in frozen:
                pair.close()
                self._pairs.remove(pair)
            return len(frozen)

    def count_connections(self) -> tuple[int, int]:
        """Return (connections forwarded now, connections black-holed)."""
        with self._lock:
            frozen = sum(p.frozen for p in self._pairs)
            return len(self._pairs) - frozen, frozen

    def close(self) -> None:
        """Stop the proxy and close every connection, black-holed ones included."""
        self._closed.set()
        self._thread.join(timeout=5)
        with self._lock:
            for pair in self._pairs:
                pair.close()
            self._pairs.clear()
        self._listener.close()
        self._selector.close()

    # -- the forwarding thread ----------------------------------------------------------

    def _run(self) -> None:
        while not self._closed.is_set():
            events = self._selector.select(timeout=0.1)
            with self._lock:
                for key, _ in events:
                    if key.data is None:
                        self._accept()
                    else:
                        self._forward(key.data, key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        pair = _Pair(client, upstream)
        for sock in (client, upstream):
            sock.settimeout(5)  # sendall to a live peer; recv only after select says readable
            self._selector.register(sock, selectors.EVENT_READ, pair)
        self._pairs.append(pair)

    def _forward(self, pair: _Pair, sock: socket.socket) -> None:
        if pair.frozen:
            return
        try:
            data = sock.recv(CHUNK_BYTES)
            if data:
                pair.peers[sock].sendall(data)
                return
        except OSError:
            pass
        # one side closed (or failed): close both, as a plain proxy does
        for side in (pair.client, pair.upstream):
            try:
                self._selector.unregister(side)
            except (KeyError, ValueError):
                pass
        pair.close()
        self._pairs.remove(pair)
