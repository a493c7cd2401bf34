"""An agent's callback endpoint for tests: a real HTTP server on 127.0.0.1 (never anything else)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from countersign_client import verify_signature


class Receiver:
    """An agent's callback endpoint on 127.0.0.1: answers the given statuses in turn, records each POST."""

    def __init__(self, statuses=(200,)):
        self.statuses = list(statuses)
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/countersign"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def signed_ok(secret: str, headers: dict, body: bytes) -> bool:
    """Check the signature as an agent would, with the helper the stdlib client ships."""
    return verify_signature(secret, body, headers["X-Countersign-Signature"])
