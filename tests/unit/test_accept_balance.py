"""A worker's server pauses after each accept in proportion to the connections it holds, and
still accepts every connection."""

from __future__ import annotations

import gevent
from gevent import socket
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer

from config import accept_balance
from config.accept_balance import BalancedServer


def test_every_connection_is_accepted_and_held_ones_slow_the_next_accept():
    release, handled = Event(), []

    def handle(client: socket.socket, _address: object) -> None:
        handled.append(client)
        release.wait(10)

    server = BalancedServer(("127.0.0.1", 0), handle=handle, spawn=Pool(100))
    server.start()
    try:
        clients = [socket.create_connection(server.address) for _ in range(5)]
        with gevent.Timeout(10):
            while len(handled) < 5:
                gevent.sleep(0.01)
        # Holding connections, the server is between accepts: paused on a timer, not watching.
        server._do_read()
        assert server._timer is not None and server._watcher is None
    finally:
        release.set()
        for client in clients:
            client.close()
        server.stop()
    assert len(handled) == 5


def test_a_single_worker_keeps_gevents_own_server():
    one = accept_balance.server(("127.0.0.1", 0), handle=lambda *a: None, workers=1)
    two = accept_balance.server(("127.0.0.1", 0), handle=lambda *a: None, workers=2)
    assert type(one) is StreamServer and type(two) is BalancedServer
