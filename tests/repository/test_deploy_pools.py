"""deploy/ serves uploads from their own gunicorn pool (issue 19): nginx.conf sends the requests that carry file bytes
there and everything else to the web pool, which never recycles its workers."""

import os
import re
import runpy
from pathlib import Path

import pytest
from django.urls import Resolver404, resolve

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# The views that receive file bytes, and so belong in the upload pool.
UPLOAD_VIEWS = {"api:draft_file", "api:upload_part"}
PATHS = [
    "/api/records/abcde-12345/draft/files/analysis.ipynb",
    "/api/records/abcde-12345/draft/files/data/deep/table.csv",
    "/api/uploads/0b6f3c1e-2a8d-4c5e-9f10-3d2e1a4b5c6d/parts/7",
    "/",
    "/api/records",
    "/api/records/abcde-12345",
    "/api/records/abcde-12345/draft",
    "/api/records/abcde-12345/draft/files",
    "/api/records/abcde-12345/draft/uploads",
    "/api/records/abcde-12345/draft/uploads/0b6f3c1e-2a8d-4c5e-9f10-3d2e1a4b5c6d/complete",
    "/records/abcde-12345/versions/1/files/draft/files/x.csv",
    "/records/abcde-12345/versions/1/files/data/table.csv",
    "/uploads/",
    "/uploads/abcde-12345/edit/",
    "/health/ready",
    "/metrics",
]


def _parse(text: str) -> list:
    """nginx configuration as nested [name, args, children] (children None for a simple directive)."""
    tokens = re.findall(r"[{};]|[^\s{};]+", re.sub(r"#[^\n]*", "", text))
    stack, current, words = [], [], []
    for token in tokens:
        if token == "{":
            block = [words[0], words[1:], []]
            current.append(block)
            stack.append(current)
            current, words = block[2], []
        elif token == "}":
            current = stack.pop()
        elif token == ";":
            current.append([words[0], words[1:], None])
            words = []
        else:
            words.append(token)
    assert not stack, "unbalanced braces"
    return current


def _blocks(directives: list, name: str) -> list:
    return [d for d in directives if d[0] == name and d[2] is not None]


def _location(locations: list, path: str) -> list:
    """The location nginx picks for `path`: `=` exact; else the longest prefix, unless it is `^~` a regex
    location matching (first in order) wins."""
    exact = [loc for loc in locations if loc[1][0] == "=" and loc[1][1] == path]
    if exact:
        return exact[0]
    prefixes = [loc for loc in locations if loc[1][0] in {"^~"} or len(loc[1]) == 1]
    prefix = max((loc for loc in prefixes if path.startswith(loc[1][-1])), key=lambda loc: len(loc[1][-1]),
                 default=None)
    if prefix is not None and prefix[1][0] == "^~":
        return prefix
    for loc in locations:
        if loc[1][0] in {"~", "~*"} and re.search(loc[1][1], path, re.I if loc[1][0] == "~*" else 0):
            return loc
    assert prefix is not None, f"no location serves {path}"
    return prefix


def _pools() -> dict[str, str]:
    """Path -> the bind address of the gunicorn pool nginx.conf sends it to."""
    config = _parse((DEPLOY / "nginx.conf").read_text())
    upstreams = {block[1][0]: [d[1][0] for d in block[2] if d[0] == "server"] for block in _blocks(config, "upstream")}
    (server,) = _blocks(config, "server")
    locations = _blocks(server[2], "location")
    pools = {}
    for path in PATHS:
        (proxy_pass,) = [d[1][0] for d in _location(locations, path)[2] if d[0] == "proxy_pass"]
        target = proxy_pass.removeprefix("http://")
        (address,) = upstreams.get(target, [target])  # an upstream block's one server, or an address
        pools[path] = address
    return pools


def _view_name(path: str) -> str:
    try:
        return resolve(path).view_name
    except Resolver404:
        return "middleware"  # /health/*, /metrics: answered before the URLconf


@pytest.fixture
def gunicorn_settings(monkeypatch):
    # The upload pool's file moves PROMETHEUS_MULTIPROC_DIR aside in os.environ: keep that to this test.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("UPLOADS_PROMETHEUS_MULTIPROC_DIR", raising=False)
    return {name: runpy.run_path(str(DEPLOY / file)) for name, file in
            [("web", "gunicorn.conf.py"), ("uploads", "gunicorn-uploads.conf.py")]}


def test_nginx_sends_the_requests_carrying_file_bytes_to_the_upload_pool_and_the_rest_to_the_web_pool(
        gunicorn_settings):
    web, uploads = gunicorn_settings["web"]["bind"], gunicorn_settings["uploads"]["bind"]
    assert web != uploads
    pools = _pools()
    for path, address in pools.items():
        view = _view_name(path)
        expected = uploads if view in UPLOAD_VIEWS else web
        assert address == expected, f"{path} ({view}) goes to {address}"
    assert sorted(path for path, address in pools.items() if address == uploads) == sorted(PATHS[:3])


def test_only_the_upload_pool_recycles_its_workers(gunicorn_settings):
    assert gunicorn_settings["web"].get("max_requests", 0) == 0
    assert gunicorn_settings["uploads"]["max_requests"] > 0
    # A recycled upload worker finishes the uploads it streams before it stops.
    assert gunicorn_settings["uploads"]["graceful_timeout"] >= 600
    # The upload pool keeps the web pool's hooks (metrics of every worker).
    assert gunicorn_settings["uploads"]["child_exit"] and gunicorn_settings["uploads"]["on_starting"]


def test_the_upload_pool_keeps_its_metrics_apart_from_the_web_pool(monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/run/nbarchive/metrics")
    monkeypatch.delenv("UPLOADS_PROMETHEUS_MULTIPROC_DIR", raising=False)
    runpy.run_path(str(DEPLOY / "gunicorn-uploads.conf.py"))
    # on_starting empties this directory: it must not be the web pool's.
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == "/run/nbarchive/metrics-uploads"


def test_every_deployment_starts_the_upload_pool():
    assert "deploy/gunicorn-uploads.conf.py" in (DEPLOY / "compose.yaml").read_text()
    assert "deploy/gunicorn-uploads.conf.py" in (DEPLOY / "systemd" / "nbarchive-uploads.service").read_text()
