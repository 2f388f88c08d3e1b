"""Fake Twilio REST APIs for the /notify benchmark, each run as its own process.

`lean`: an asyncio server that answers UserDefinedMessage creations after `--delay` seconds
and costs little CPU per request, so that on a small machine the fake does not steal the
CPU the relays under test need. `mock`: sandbox.twilio_mock (the development mock, a threaded
werkzeug server) with the same delay, to show what the heavier mock costs.

    python -m bench.fake_twilio --kind lean --port 4010 --delay 0.05 \
        --account-sid AC... --auth-token ...
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import signal
import threading
from email.utils import formatdate

MESSAGE_PATH_END = b"/UserDefinedMessages.json"


def _response(status: str, body: bytes) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + body


class LeanFake:
    """Answers POST …/Calls/<sid>/UserDefinedMessages.json with a 201 after `delay` seconds."""

    def __init__(self, account_sid: str, auth_token: str, delay: float) -> None:
        self.account_sid = account_sid
        self.delay = delay
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.authorization = f"Basic {credentials}".encode()
        # Connections accepted and messages answered: GET /stats, to see connection reuse.
        self.connections = 0
        self.messages = 0

    def answer(self, request_line: bytes, headers: dict[bytes, bytes]) -> bytes:
        """The response bytes for one request (its body has been read and is not needed)."""
        parts = request_line.split(b" ")
        if len(parts) != 3:
            return _response("400 Bad Request", b'{"code": 20001, "status": 400}')
        method, path = parts[0], parts[1]
        if method == b"GET" and path == b"/stats":
            return _response("200 OK", json.dumps({"connections": self.connections,
                                                   "messages": self.messages}).encode())
        if headers.get(b"authorization") != self.authorization:
            return _response("401 Unauthorized", b'{"code": 20003, "status": 401}')
        if method != b"POST" or not path.endswith(MESSAGE_PATH_END):
            return _response("404 Not Found", b'{"code": 20404, "status": 404}')
        call_sid = path[: -len(MESSAGE_PATH_END)].rsplit(b"/", 1)[-1].decode()
        self.messages += 1
        body = json.dumps({"account_sid": self.account_sid, "call_sid": call_sid,
                           "sid": "KX" + secrets.token_hex(16),
                           "date_created": formatdate(usegmt=True)}).encode()
        return _response("201 Created", body)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one keep-alive connection until the client closes it."""
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.split(b"\r\n")
                headers: dict[bytes, bytes] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get(b"content-length", b"0"))
                if length:
                    await reader.readexactly(length)
                if not lines[0].startswith(b"GET /stats "):
                    await asyncio.sleep(self.delay)
                writer.write(self.answer(lines[0], headers))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def serve(self, host: str, port: int) -> None:
        """Serve until SIGTERM or SIGINT."""
        server = await asyncio.start_server(self.handle, host, port, backlog=1024)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            print(f"lean fake twilio on {host}:{port}", flush=True)
            await stop.wait()


def serve_mock(account_sid: str, auth_token: str, delay: float, host: str, port: int) -> None:
    """sandbox.twilio_mock with every answer delayed, until SIGTERM or SIGINT."""
    from sandbox.twilio_mock import TwilioMock

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    mock = TwilioMock(account_sid, {account_sid: auth_token})
    with mock.start(host, port):
        mock.delay = delay
        print(f"twilio mock on {mock.base_url}", flush=True)
        stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run one fake until terminated."""
    parser = argparse.ArgumentParser(prog="python -m bench.fake_twilio")
    parser.add_argument("--kind", choices=("lean", "mock"), default="lean")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    args = parser.parse_args(argv)
    if args.kind == "mock":
        serve_mock(args.account_sid, args.auth_token, args.delay, args.host, args.port)
    else:
        asyncio.run(LeanFake(args.account_sid, args.auth_token, args.delay)
                    .serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
