"""What a reader's pages cost once cached: the landing page (with its rendered notebook's table of contents and
citation), the rendered notebook of its frame, the badge, and a citation style picked; p50 and p95 over N views.

Run by hand with pytest, which gives it a test database (SQLite by default, PostgreSQL without
NBARCHIVE_TEST_DB=sqlite):

    [BENCH_VIEWS=200] NBARCHIVE_TEST_DB=sqlite .venv/bin/python -m pytest tests/bench/landing.py -q -s

In-process through Django's test client (no network, no gunicorn), DEBUG off; the first view of each page,
which renders the notebook in the worker, is reported apart.
"""

import os
import statistics
import time

import pytest
from django.urls import reverse

from repository.selectors import version_metadata
from repository.services.drafts import draft_update
from tests.factories import UserFactory, accept, demo_draft, sync_pending, upload

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def timed(client, url, views: int, **params) -> tuple[float, list[float]]:
    start = time.perf_counter()
    assert client.get(url, params, headers={"user-agent": BROWSER}).status_code == 200
    first = time.perf_counter() - start
    times = []
    for _ in range(views):
        start = time.perf_counter()
        response = client.get(url, params, headers={"user-agent": BROWSER})
        times.append(time.perf_counter() - start)
        assert response.status_code == 200
    return first, sorted(times)


def test_landing_page_figures(client, settings, tmp_path):
    from repository import demo

    settings.DEBUG = False
    settings.DOI_PROVIDER = "local"
    settings.VAR_DIR = tmp_path / "var"
    views = int(os.environ.get("BENCH_VIEWS", "200"))
    author, admin = UserFactory(), UserFactory(is_superuser=True)
    draft = demo_draft(author, title="Bench")
    upload(draft, author, "bench.ipynb", demo.notebook())
    draft_update(version=draft, actor=author, metadata={**version_metadata(draft), "notebook_path": "bench.ipynb"})
    version = accept(draft, admin)
    sync_pending()
    record_id = version.record.public_id
    pages = [
        ("rendered notebook (frame)", reverse("repository:version_notebook",
                                              kwargs={"record_id": record_id, "number": 1}), {}),
        ("landing page", reverse("repository:record_landing", kwargs={"record_id": record_id}), {}),
        ("landing page, IEEE citation", reverse("repository:record_landing", kwargs={"record_id": record_id}),
         {"style": "ieee"}),
        ("badge.svg", reverse("repository:record_badge", kwargs={"record_id": record_id}), {}),
    ]
    print(f"\n{views} views each, after a first one:")
    for name, url, params in pages:
        first, times = timed(client, url, views, **params)
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        print(f"  {name:30} first {first * 1000:7.1f} ms   p50 {statistics.median(times) * 1000:6.1f} ms"
              f"   p95 {p95 * 1000:6.1f} ms")
