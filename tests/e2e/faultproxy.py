"""A TCP proxy that can cut a connection path on demand (for network-partition tests).

One ``FaultProxy`` sits in front of one broker's REPLICATION listener; the broker
advertises the proxy's port as its REPLICATION endpoint, so every follower that
fetches from that broker goes through the proxy, while clients (PLAINTEXT) and
the controller quorum (CONTROLLER) do not.

``cut()`` turns the proxy into a black hole: established connections are reset
and new ones are accepted and then held without reading or forwarding a byte,
which is what a follower sees when a switch drops the leader's packets (its
requests simply never get an answer). ``heal()`` closes the held connections so
the followers reconnect at once, and forwards again.

Plain threads, one listener thread plus two pump threads per connection: the
replication traffic in the tests is small, and a killed or restarted broker
behind the proxy only means refused upstream connects, which are passed on as
an immediate close.
"""

from __future__ import annotations

import socket
import struct
import threading


CONNECT_TIMEOUT_S = 2.0


def _abort(sock: socket.socket) -> None:
    """Reset ``sock`` (RST rather than FIN) and wake any thread blocked on it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RD)  # wakes a pump blocked in recv, sends nothing
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    """127.0.0.1:``port`` -> ``target_host``:``target_port``, with cut/heal."""

    def __init__(self, target_host: str, target_port: int, name: str = "proxy"):
        self.name = name
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((self.host, 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._cut = False
        self._closed = False
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._held: list[socket.socket] = []
        self.accepted = 0
        self.held_total = 0
        self._thread = threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ control

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        """Black-hole the path: reset live connections, hold new ones unanswered."""
        with self._lock:
            self._cut = True
            pairs = list(self._pairs)
            self._pairs.clear()
        for a, b in pairs:
            _abort(a)
            _abort(b)

    def heal(self) -> None:
        """Forward again; connections held while cut are closed so peers reconnect."""
        with self._lock:
            self._cut = False
            held, self._held = self._held, []
        for s in held:
            _abort(s)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pairs = list(self._pairs)
            self._pairs.clear()
            held, self._held = self._held, []
        _abort(self._listener)
        for a, b in pairs:
            _abort(a)
            _abort(b)
        for s in held:
            _abort(s)
        self._thread.join(timeout=5)

    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    # ------------------------------------------------------------------ internals

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            with self._lock:
                if self._closed:
                    _abort(client)
                    return
                self.accepted += 1
                if self._cut:
                    self._held.append(client)
                    self.held_total += 1
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT_S)
            except OSError:
                _abort(client)  # broker down: the follower sees a closed connection
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self._lock:
                if self._cut or self._closed:
                    # Cut while we were connecting upstream: hold the client instead.
                    _abort(upstream)
                    if self._closed:
                        _abort(client)
                    else:
                        self._held.append(client)
                        self.held_total += 1
                    continue
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(client, upstream, pair),
                             name=f"{self.name}-c2u", daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, pair),
                             name=f"{self.name}-u2c", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._pairs.discard(pair)
        _abort(src)
        _abort(dst)
