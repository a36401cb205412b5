"""The HTTP server every fake in tests/fakes/ is built on: 127.0.0.1, a free port, a thread, optional TLS.

A fake subclasses `LoopbackServer` and answers in `answer(request, exchange)`: it returns a `Response`, or
writes to `exchange` itself (slow or broken answers) and returns None. The base does the rest:

- `with Fake(...) as server:` or `start()`/`stop()`; `stop()` is safe twice, wakes handlers waiting on
  `stopping` and joins every handler thread, so no request outlives the test;
- every request is recorded (`requests`, a copy; `forget_requests()`), with the status it got;
- faults a test switches on, for the client's error handling: `fail_next(n, status)` answers an error
  without carrying the request out, `hang(seconds)` waits and closes without answering, `lose_next(n)` carries
  it out and then closes without answering; each may be limited to a method or a path fragment. The error's
  body is the fake's own protocol's (`fault_response`). `fail_randomly(rate, seed=...)` fails a share of all
  requests, chosen by a seeded generator (the same requests in the same order fail the same way);
- `tls=trustme.CA()` serves HTTPS with a certificate of that CA for `hostnames`.
"""

from __future__ import annotations

import json
import random
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

HANDLER_SOCKET_TIMEOUT = 10  # seconds: a stuck client cannot keep a handler thread alive longer
REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


@dataclass
class Request:
    method: str
    path: str  # as sent, with the query string
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int | None = None  # what the fake answered (or would have, when the answer was lost)
    answered: bool = False  # False when a fault closed the connection without an answer
    fault: str | None = None  # the kind of fault applied to this request

    @property
    def url_path(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        """The query string's arguments (the last value of a repeated one)."""
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, data: Any, *, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(data).encode(), content_type, dict(headers or {}))


@dataclass
class Fault:
    kind: str  # "fail": answer `status`; "hang": wait, close, do nothing; "lose": do it, wait, close
    remaining: int | None  # None: until recover()
    method: str | None = None
    path_contains: str | None = None
    status: int = 503
    seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    def applies(self, request: Request) -> bool:
        return self.method in (None, request.method) and (
            self.path_contains is None or self.path_contains in request.path)


class LoopbackServer:
    scheme = "http"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, tls=None,
                 hostnames: tuple[str, ...] = ("127.0.0.1", "localhost")):
        self.stopping = threading.Event()
        self._lock = threading.RLock()
        self._requests: list[Request] = []
        self._faults: list[Fault] = []
        self._random_failure: tuple[float, random.Random, tuple[int, ...], float] | None = None
        self._httpd = _Server((host, port), Exchange)
        self._httpd.owner = self
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.issue_cert(*hostnames).configure_cert(context)
            # Handshake in the handler thread, not in accept(): a client that never speaks TLS cannot block us.
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True,
                                                     do_handshake_on_connect=False)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"{type(self).__name__}-http")
        self._started = self._stopped = False

    # --- what a fake provides ---

    def answer(self, request: Request, exchange: Exchange) -> Response | None:
        raise NotImplementedError

    def fault_response(self, fault: Fault) -> Response:
        """The answer of a "fail" fault, in the fake's protocol."""
        return Response(fault.status, b"", None, dict(fault.headers))

    # --- lifecycle ---

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self._httpd.server_address[0]}:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop listening and join every handler thread; handlers waiting on `stopping` wake at once."""
        if self._stopped:
            return
        self._stopped = True
        self.stopping.set()
        if self._started:
            self._httpd.shutdown()
        self._httpd.server_close()  # joins the handler threads (block_on_close)
        if self._started:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- the request log ---

    @property
    def requests(self) -> list[Request]:
        """Every request received so far, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    def forget_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # --- faults ---

    def fail_next(self, n: int = 1, status: int = 503, *, method: str | None = None, path_contains: str | None = None,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next `n` matching requests with `status`, without carrying them out."""
        self._add_fault(Fault("fail", n, method, path_contains, status=status, headers=dict(headers or {})))

    def fail_with(self, status: int = 503, *, method: str | None = None, headers: dict[str, str] | None = None) -> None:
        """Answer every request with `status`, without carrying it out, until recover()."""
        self._add_fault(Fault("fail", None, method, status=status, headers=dict(headers or {})))

    def hang(self, seconds: float, *, times: int | None = 1, method: str | None = None,
             path_contains: str | None = None) -> None:
        """Wait `seconds`, then close the connection without answering; the request is NOT carried out.
        `times=None` hangs until recover()."""
        self._add_fault(Fault("hang", times, method, path_contains, seconds=seconds))

    def lose_next(self, n: int = 1, *, delay: float = 0.0, method: str | None = None) -> None:
        """Carry out the next `n` requests, then wait `delay` seconds and close the connection without answering
        (delay=0: a connection error at once; longer than the client's timeout: a timeout). The change is made."""
        self._add_fault(Fault("lose", n, method, seconds=delay))

    def fail_randomly(self, rate: float, *, seed: int, statuses: tuple[int, ...] = (503,),
                      lost_share: float = 0.0) -> None:
        """Until recover(), fail each request with probability `rate`, as a registrar under load does: most such
        failures answer one of `statuses` without carrying the request out; `lost_share` of them carry it out and
        close the connection without answering (a change made whose answer never arrived). Seeded: the same
        sequence of requests meets the same failures."""
        if not 0 <= rate <= 1 or not 0 <= lost_share <= 1:
            raise ValueError("rate and lost_share are probabilities")
        with self._lock:
            self._random_failure = (rate, random.Random(seed), tuple(statuses), lost_share)

    def recover(self) -> None:
        """Remove every fault: requests are answered normally again."""
        with self._lock:
            self._faults.clear()
            self._random_failure = None

    def _add_fault(self, fault: Fault) -> None:
        fault.method = fault.method.upper() if fault.method else None
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if not fault.applies(request):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
            if self._random_failure is not None:
                rate, rng, statuses, lost_share = self._random_failure
                if rng.random() < rate:
                    if rng.random() < lost_share:
                        return Fault("lose", 1)
                    return Fault("fail", 1, status=rng.choice(statuses))
        return None

    # --- one exchange ---

    def _serve(self, exchange: Exchange) -> None:
        length = int(exchange.headers.get("Content-Length") or 0)
        request = Request(exchange.command, exchange.path, {k.lower(): v for k, v in exchange.headers.items()},
                          exchange.rfile.read(length) if length else b"")
        with self._lock:
            self._requests.append(request)
        exchange.close_connection = True
        fault = self._take_fault(request)
        request.fault = fault.kind if fault else None
        if fault is not None and fault.kind == "hang":
            self.stopping.wait(fault.seconds)
            return  # closes the connection without an answer: nothing was carried out
        if fault is not None and fault.kind == "fail":
            response = self.fault_response(fault)
        else:
            try:
                response = self.answer(request, exchange)
            except Exception as error:
                if exchange.answering:
                    raise  # the answer is half sent (often: the client went away); the connection just ends
                # A fake's bug is a 500 with its text, not a client left waiting.
                response = Response(500, f"fake: {error!r}".encode(), "text/plain")
        if response is None:
            return  # the fake answered by itself (or chose not to)
        request.status = response.status
        if fault is not None and fault.kind == "lose":
            self.stopping.wait(fault.seconds)
            return  # carried out, but the answer never leaves
        exchange.send(response, head=request.method == "HEAD")
        request.answered = True


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # tracked, so server_close() joins them
    block_on_close = True
    request_queue_size = 64  # the default 5 drops bursts of concurrent connects, which then wait 1 s to retry
    owner: LoopbackServer

    def handle_error(self, request, client_address) -> None:
        # Clients that give up (timeouts, refused certificates) are what the tests provoke; keep output clean.
        pass


class Exchange(BaseHTTPRequestHandler):
    """One connection; fakes that answer by hand write to it (send_response, send_header, wfile)."""

    protocol_version = "HTTP/1.1"
    timeout = HANDLER_SOCKET_TIMEOUT
    server: _Server
    answering = False  # a status line has been written

    def send_response(self, code: int, message: str | None = None) -> None:
        self.answering = True
        super().send_response(code, message)

    def do_GET(self) -> None:
        self.server.owner._serve(self)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format, *args) -> None:
        pass

    @property
    def stopping(self) -> threading.Event:
        return self.server.owner.stopping

    def send(self, response: Response, *, head: bool = False) -> None:
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    def send_simple(self, status: int, body: bytes, *, content_type: str = "application/octet-stream",
                    headers: dict[str, str] | None = None, send_length: bool = True) -> None:
        """An answer without Content-Length when `send_length` is False (the body then ends with the connection)."""
        if send_length:
            self.send(Response(status, body, content_type, dict(headers or {})))
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
