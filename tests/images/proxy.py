"""A misbehaving registry for the tests: a loopback HTTP proxy in front of a real one.

`lie_about` maps a manifest digest to another image (`name@sha256:...` in the same registry): asked for the
first, the proxy answers with the manifest of the second (and the requested digest in its headers), as a
compromised or broken registry or mirror would.
`blob_delay_seconds` holds every blob download back, as a slow registry would.
"""

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

FORWARDED_HEADERS = ("Accept", "Authorization", "Range")
RETURNED_HEADERS = ("Content-Type", "Docker-Content-Digest", "Docker-Distribution-Api-Version", "WWW-Authenticate",
                    "Location", "Content-Range")


class RegistryProxy:
    def __init__(self, upstream: str, *, lie_about: dict[str, str] | None = None, blob_delay_seconds: float = 0):
        self.upstream = upstream
        self.lie_about = dict(lie_about or {})
        self.blob_delay_seconds = blob_delay_seconds
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._forward()

            def do_HEAD(self):
                self._forward()

            def _forward(self):
                path = self.path
                requested = path.rsplit("/manifests/", 1)[1] if "/manifests/" in path else ""
                if requested in proxy.lie_about:
                    name, digest = proxy.lie_about[requested].split("@")
                    path = f"/v2/{name}/manifests/{digest}"
                if "/blobs/" in path and proxy.blob_delay_seconds:
                    time.sleep(proxy.blob_delay_seconds)
                connection = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {name: self.headers[name] for name in FORWARDED_HEADERS if self.headers[name]}
                connection.request(self.command, path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                self.send_response(response.status)
                for name in RETURNED_HEADERS:
                    value = response.getheader(name)
                    if value and name == "Docker-Content-Digest" and requested in proxy.lie_about:
                        value = requested
                    if value and name == "Location":
                        value = value.replace(proxy.upstream, proxy.host)
                    if value:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                connection.close()

        return Handler
