"""A real HTTPS server on 127.0.0.1 for tests, with a certificate from a throwaway trustme CA.

Tests register what each path answers (a file, a redirect, or a handler function) and read back every request
the server received. It binds only 127.0.0.1, and `stop()` (or leaving the `with` block) ends the listener and
joins every handler thread; slow handlers wait on `stopping` so they end at once.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlsplit

import trustme

HANDLER_SOCKET_TIMEOUT = 10  # seconds: a stuck client cannot keep a handler thread alive longer


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lower-cased
    body: bytes


Route = Callable[["_Handler", RecordedRequest], None]


class LoopbackHTTPSServer:
    def __init__(self, ca: trustme.CA, *, hostnames: tuple[str, ...] = ("127.0.0.1", "localhost", "data.example")):
        self.routes: dict[str, Route] = {}
        self.requests: list[RecordedRequest] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*hostnames).configure_cert(context)
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        # Handshake in the handler thread, not in accept(): a client that never speaks TLS cannot block the server.
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the handler threads (block_on_close)
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- what paths answer ------------------------------------------------------------------------------------

    def add_file(
        self, path: str, body: bytes, *, content_type: str = "application/octet-stream", send_length: bool = True
    ) -> None:
        def respond(handler: _Handler, request: RecordedRequest) -> None:
            handler.send_simple(200, body, content_type=content_type, send_length=send_length)

        self.routes[path] = respond

    def add_redirect(self, path: str, location: str, *, status: int = 302) -> None:
        def respond(handler: _Handler, request: RecordedRequest) -> None:
            handler.send_simple(status, b"", headers={"Location": location})

        self.routes[path] = respond

    def add_route(self, path: str, route: Route) -> None:
        self.routes[path] = route

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if urlsplit(request.path).path == path]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # tracked, so server_close() joins them
    block_on_close = True
    owner: LoopbackHTTPSServer

    def handle_error(self, request, client_address) -> None:
        # Clients that abort (refused certificates, early stops) are what the tests provoke; keep output clean.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = HANDLER_SOCKET_TIMEOUT
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def log_message(self, format, *args) -> None:
        pass

    @property
    def stopping(self) -> threading.Event:
        return self.server.owner.stopping

    def send_simple(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
        send_length: bool = True,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if send_length:
            self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        self.server.owner._record(request)
        route = self.server.owner.routes.get(urlsplit(self.path).path)
        if route is None:
            self.send_simple(404, b"not found", content_type="text/plain")
            return
        route(self, request)
        self.close_connection = True
