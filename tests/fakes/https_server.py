"""A real HTTPS server on 127.0.0.1 for tests, with a certificate from a throwaway trustme CA.

Tests register what each path answers (a file, a redirect, or a route function that writes the answer itself,
given the `Exchange` and the request) and read back every request the server received (`requests`,
`requests_to(path)`). Slow routes wait on `exchange.stopping`, so they end at once when the server stops.
"""

from __future__ import annotations

from collections.abc import Callable

import trustme

from tests.fakes.loopback import Exchange, LoopbackServer, Request, Response

Route = Callable[[Exchange, Request], None]


class LoopbackHTTPSServer(LoopbackServer):
    def __init__(self, ca: trustme.CA, *, hostnames: tuple[str, ...] = ("127.0.0.1", "localhost", "data.example")):
        super().__init__(tls=ca, hostnames=hostnames)
        self.routes: dict[str, Route] = {}

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def add_file(
        self, path: str, body: bytes, *, content_type: str = "application/octet-stream", send_length: bool = True
    ) -> None:
        def respond(exchange: Exchange, request: Request) -> None:
            exchange.send_simple(200, body, content_type=content_type, send_length=send_length)

        self.routes[path] = respond

    def add_redirect(self, path: str, location: str, *, status: int = 302) -> None:
        def respond(exchange: Exchange, request: Request) -> None:
            exchange.send_simple(status, b"", headers={"Location": location})

        self.routes[path] = respond

    def add_route(self, path: str, route: Route) -> None:
        self.routes[path] = route

    def requests_to(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.url_path == path]

    def answer(self, request: Request, exchange: Exchange) -> Response | None:
        route = self.routes.get(request.url_path)
        if route is None:
            return Response(404, b"not found", "text/plain")
        route(exchange, request)
        return None
