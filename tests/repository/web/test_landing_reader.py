"""What a reader sees of a published version: the rendered notebook with its table of contents, the public
reproducibility report behind the verdict, and the README badge. Versions go through the real publishing flow;
the notebook is rendered by the real worker process."""

import re

import nbformat
import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from repository.models import ExecutionRun, Verdict, Version
from repository.selectors import version_metadata
from repository.services.drafts import draft_update
from repository.services.published import version_withdraw
from tests.factories import UserFactory, accept, demo_draft, png_base64, sync_pending, upload

pytestmark = pytest.mark.django_db


def reader_notebook() -> bytes:
    notebook = new_notebook(cells=[
        new_markdown_cell("# Introduction\n\nWhat we measure."),
        new_markdown_cell("## Method & data <script>alert(1)</script>"),
        new_code_cell("plot()", execution_count=1, outputs=[
            new_output("display_data", data={"image/png": png_base64((30, 20)), "text/plain": "<Figure>"}),
            new_output("display_data", data={"text/html": "<b>table</b><script>document.cookie</script>",
                                             "text/plain": "table"}),
        ]),
        new_markdown_cell("### Fit of the *slope*"),
    ])
    return nbformat.writes(notebook).encode()


@pytest.fixture(autouse=True)
def isolated(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"  # an own render cache
    settings.DOI_PROVIDER = "local"
    cache.clear()  # and no table of contents or citation remembered from another test


@pytest.fixture
def moderator(db):
    return UserFactory(is_superuser=True)


@pytest.fixture
def published(user, moderator) -> Version:
    draft = demo_draft(user, title="Reading notebooks")
    upload(draft, user, "reader.ipynb", reader_notebook())
    draft_update(version=draft, actor=user, metadata={**version_metadata(draft), "notebook_path": "reader.ipynb"})
    version = accept(draft, moderator)
    sync_pending()
    version.refresh_from_db()
    assert version.state == Version.State.PUBLISHED
    return version


def finished_run(version, verdict=Verdict.REPRODUCED, **fields) -> ExecutionRun:
    notebook = version.files.select_related("blob").get(path=version.notebook_path)
    return ExecutionRun.objects.create(
        version=version, runner="local", notebook_path=version.notebook_path, status=ExecutionRun.Status.FINISHED,
        verdict=verdict, message="All outputs match.", finished_at=timezone.now(), logs="kernel started",
        executed_notebook=notebook.blob, report={"summary": {"code_cells": 1, "identical": 1}}, **fields)


def landing(client, version):
    response = client.get(reverse("repository:record_landing", kwargs={"record_id": version.record.public_id}))
    assert response.status_code == 200
    return response.content.decode()


# --- The notebook -------------------------------------------------------------------------------------------

def frame_url(version) -> str:
    return reverse("repository:version_notebook", kwargs={"record_id": version.record.public_id,
                                                          "number": version.number})


def test_the_landing_page_shows_the_notebook_in_a_sandboxed_frame_with_its_headings(client, published):
    assert client.get(frame_url(published)).status_code == 200  # rendered once (usually by its moderator)
    html = landing(client, published)
    url = frame_url(published)
    frame = re.search(r"<iframe[^>]*>", html).group(0)
    assert f'src="{url}"' in frame
    assert re.search(r"\ssandbox(\s|>)", frame)  # no allow-scripts, no allow-same-origin
    assert "allow-" not in frame and 'name="notebook-frame"' in frame
    toc = html[html.index('id="notebook-toc"'):html.index("</nav>", html.index('id="notebook-toc"'))]
    entries = re.findall(r'<li class="toc-level-(\d)"><a href="([^"]*)" target="notebook-frame">([^<]*)</a>', toc)
    assert [(level, text) for level, _, text in entries] == [
        ("1", "Introduction"), ("2", "Method &amp; data"), ("3", "Fit of the slope")]
    assert all(href.startswith(url + "#") for _, href, _ in entries)
    download = reverse("repository:published_file", kwargs={"record_id": published.record.public_id,
                                                            "number": 1, "file_path": "reader.ipynb"})
    assert f'href="{download}" id="notebook-download"' in html

    page = client.get(url)
    assert page.status_code == 200
    csp = page["Content-Security-Policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp and "script-src" not in csp
    body = page.content.decode()
    # Every TOC anchor exists in the rendered document.
    for _, href, _ in entries:
        assert f'id="{href.split("#", 1)[1]}"' in body  # both HTML-escaped
    assert re.search(r'<img [^>]*src="data:image/png;base64,', body) and "<b>table</b>" in body  # inline
    assert "<script" not in body and "document.cookie" not in body


def test_the_landing_page_never_waits_for_the_renderer(client, published, monkeypatch):
    from repository.rendering import pages

    monkeypatch.setattr(pages, "run_worker", lambda *a, **k: pytest.fail("the landing page started the worker"))
    html = landing(client, published)
    assert 'id="notebook-frame"' in html and 'id="notebook-toc"' not in html  # the frame's request renders it


def test_the_rendering_is_cached_and_not_served_for_withdrawn_or_unpublished_versions(client, published, user,
                                                                                      moderator, monkeypatch):
    url = frame_url(published)
    first = client.get(url).content
    from repository.rendering import pages

    monkeypatch.setattr(pages, "run_worker", lambda *a, **k: pytest.fail("rendered twice"))
    assert client.get(url).content == first
    assert 'id="notebook-toc"' in landing(client, published)  # the table of contents comes from the cache

    draft = demo_draft(user)
    assert client.get(reverse("repository:version_notebook", kwargs={"record_id": draft.record.public_id,
                                                                     "number": 1})).status_code == 404
    version_withdraw(version=published, actor=moderator, reason="Wrong data.")
    gone = client.get(url)
    assert gone.status_code == 410 and b"withdrawn" in gone.content


# --- The public reproducibility report ----------------------------------------------------------------------

def test_the_verdict_links_to_the_report_that_anyone_can_read(client, published):
    run = finished_run(published)
    html = landing(client, published)
    report_url = reverse("repository:run_report", kwargs={"run_id": run.run_id})
    assert re.search(rf'<a class="badge verdict-reproduced" id="verdict" href="{report_url}"', html)

    report = client.get(report_url)  # anonymous
    assert report.status_code == 200
    text = report.content.decode()
    assert "Reproducibility report" in text and "All outputs match." in text
    assert 'id="landing-link"' in text and "My uploads" not in text
    executed = client.get(reverse("api:run_executed_notebook", kwargs={"run_id": run.run_id}))
    assert executed.status_code == 200 and executed["Content-Disposition"].startswith("attachment")
    api = client.get(reverse("api:run", kwargs={"run_id": run.run_id}))
    assert api.status_code == 200 and api.json()["verdict"] == "reproduced"


def test_runs_of_drafts_stay_private(client, user, other_user):
    draft = demo_draft(user)
    run = finished_run(draft)
    report_url = reverse("repository:run_report", kwargs={"run_id": run.run_id})

    anonymous = client.get(report_url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert client.get(reverse("api:run_executed_notebook", kwargs={"run_id": run.run_id})).status_code == 401
    assert client.get(reverse("api:run", kwargs={"run_id": run.run_id})).status_code == 401
    client.force_login(other_user)
    assert client.get(report_url).status_code == 404
    assert client.get(reverse("api:run_executed_notebook", kwargs={"run_id": run.run_id})).status_code == 404
    client.force_login(user)
    assert client.get(report_url).status_code == 200


def test_a_withdrawn_versions_report_is_private_again(client, published, moderator):
    run = finished_run(published)
    version_withdraw(version=published, actor=moderator, reason="Wrong data.")
    assert client.get(reverse("repository:run_report", kwargs={"run_id": run.run_id})).status_code == 302
    assert client.get(reverse("api:run_executed_notebook", kwargs={"run_id": run.run_id})).status_code == 401


# --- The badge ----------------------------------------------------------------------------------------------

def badge(client, version, **headers):
    return client.get(reverse("repository:record_badge", kwargs={"record_id": version.record.public_id}),
                      headers=headers)


def test_the_badge_says_the_verdict_and_date_with_image_headers(client, published):
    run = finished_run(published, verdict=Verdict.REPRODUCED_WITH_DIFFERENCES)
    response = badge(client, published)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert response["Cache-Control"] == "public, max-age=300"
    assert "sandbox" in response["Content-Security-Policy"] and response["X-Content-Type-Options"] == "nosniff"
    svg = response.content.decode()
    assert svg.startswith("<svg") and "<script" not in svg
    assert f"reproduced with differences {run.finished_at:%Y-%m-%d}" in svg and "#dfb317" in svg

    again = badge(client, published, if_none_match=response["ETag"])
    assert again.status_code == 304


def test_the_badge_of_an_unverified_withdrawn_or_unknown_record(client, published, moderator):
    assert "not verified" in badge(client, published).content.decode()
    finished_run(published, verdict=Verdict.NOT_REPRODUCED)
    assert "#e05d44" in badge(client, published).content.decode()
    version_withdraw(version=published, actor=moderator, reason="Wrong data.")
    assert "withdrawn" in badge(client, published).content.decode()
    unknown = client.get(reverse("repository:record_badge", kwargs={"record_id": "no-such-record"}))
    assert unknown.status_code == 404 and unknown["Content-Type"].startswith("image/svg+xml")


def test_the_landing_page_shows_the_markdown_and_html_to_embed_the_badge(client, published, settings):
    settings.SITE_URL = "https://nbarchive.example.org"
    html = landing(client, published)
    record_id = published.record.public_id
    image = f"https://nbarchive.example.org/records/{record_id}/badge.svg"
    markdown = f"[![Reproducibility]({image})](https://nbarchive.example.org/records/{record_id}/)"
    assert f'<textarea id="badge-markdown" class="snippet mono" rows="2" readonly>{markdown}</textarea>' in html
    assert (f'<textarea id="badge-html" class="snippet mono" rows="2" readonly>&lt;a href=&quot;'
            f'https://nbarchive.example.org/records/{record_id}/&quot;&gt;&lt;img src=&quot;{image}&quot; '
            'alt=&quot;Reproducibility&quot;&gt;&lt;/a&gt;</textarea>') in html
    assert f'<img src="/records/{record_id}/badge.svg" alt="Reproducibility badge of this record"' in html
