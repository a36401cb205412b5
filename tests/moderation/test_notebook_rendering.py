"""The rendered notebook (repository/rendering/) as the review page shows it: what survives sanitising, the page's
headers, who sees it, the cache and the time limit. The browser proof that nothing runs is in
tests/e2e/test_notebook_xss.py."""

import base64
import io
import json
import time
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from PIL import Image

from moderation.services import review_submit
from repository import rendering, storage
from repository.models import Blob
from repository.rendering import NotebookRenderError, pages, render_notebook_html, worker
from repository.services.drafts import record_create
from tests.factories import IMAGE, UserFactory, png_base64, upload

pytestmark = pytest.mark.django_db

MARKER = "PWN"  # every hostile payload carries it; none may reach the page, not even as text
EXPECTED_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                                "frame-ancestors 'self'; sandbox"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private",
    "Content-Type": "text/html; charset=utf-8",
}


@pytest.fixture(autouse=True)
def own_var_dir(settings, tmp_path):
    """Each test renders into its own, empty cache."""
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


def jpeg_base64() -> str:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 90, 200)).save(out, format="JPEG")
    return base64.b64encode(out.getvalue()).decode()


def notebook(cells, metadata=None) -> bytes:
    """nbformat 4.5 JSON written by hand, so that anything the schema allows can be put in."""
    for number, cell in enumerate(cells):
        cell.setdefault("id", f"c{number}")
        cell.setdefault("metadata", {})
        if cell["cell_type"] == "code":
            cell.setdefault("execution_count", None)
            cell.setdefault("outputs", [])
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": metadata or {}, "cells": cells}).encode()


def markdown(source, **extra):
    return {"cell_type": "markdown", "source": source, **extra}


def code(source, *outputs, count=1):
    return {"cell_type": "code", "source": source, "execution_count": count, "outputs": list(outputs)}


def display(data, metadata=None):
    return {"output_type": "display_data", "data": data, "metadata": metadata or {}}


def normal_notebook() -> bytes:
    return notebook([
        markdown("# Thermal expansion\n\nThe *measured* lengths, see ![a plot](attachment:plot.png)",
                 attachments={"plot.png": {"image/png": png_base64((3, 3))}}),
        code("print('hello from the notebook')",
             {"output_type": "stream", "name": "stdout", "text": ["hello from the notebook\n"]}),
        code("1 + 1", {"output_type": "execute_result", "execution_count": 2, "metadata": {},
                       "data": {"text/plain": "2"}}, count=2),
        code("plot()", display({"image/png": png_base64(), "text/plain": "<Figure>"},
                               {"image/png": {"width": 320, "height": 240}}), count=3),
        code("photo()", display({"image/jpeg": jpeg_base64(), "text/plain": "<Photo>"}), count=4),
        code("frame", display({"text/html": "<table class='dataframe'><thead><tr><th>x</th></tr></thead>"
                                            "<tbody><tr><td>42</td></tr></tbody></table>",
                               "text/plain": "    x\n0  42"}), count=5),
        code("1/0", {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero",
                     "traceback": ["ZeroDivisionError: division by zero"]}, count=6),
    ], metadata={"language_info": {"name": "python"}})


SVG = f'<svg xmlns="http://www.w3.org/2000/svg" onload="{MARKER}()"><circle r="4"/><script>{MARKER}()</script></svg>'


def hostile_notebook() -> bytes:
    html_payloads = "".join([
        f"<script>document.title='{MARKER}'</script>",
        f"<img src=x onerror=\"document.title='{MARKER}'\">",
        f"<svg onload=\"alert('{MARKER}')\"><circle r='3'/></svg>",
        f"<iframe src=\"javascript:alert('{MARKER}')\" srcdoc=\"<script>{MARKER}</script>\"></iframe>",
        f"<object data=\"javascript:{MARKER}\"></object><embed src=\"javascript:{MARKER}\">",
        f"<form action=\"https://evil.example/{MARKER}\"><input name=\"{MARKER}\" value=\"{MARKER}\"></form>",
        f"<meta http-equiv=\"refresh\" content=\"0;url=javascript:{MARKER}\">",
        f"<base href=\"https://evil.example/{MARKER}/\">",
        f"<link rel=\"stylesheet\" href=\"https://evil.example/{MARKER}.css\">",
        f"<div style=\"width: expression(alert('{MARKER}')); background: url(javascript:{MARKER})\">styled</div>",
        f"<style>body {{ background: url(javascript:{MARKER}); }}</style>",
        f"<a href=\"javascript:alert('{MARKER}')\">html link</a>",
        f"<img src=\"data:text/html;base64,{base64.b64encode(MARKER.encode()).decode()}\">",
    ])
    return notebook([
        markdown(f"Click [this markdown link](javascript:alert('{MARKER}')) or "
                 f"<a href=\"JaVaScRiPt:alert('{MARKER}')\">this one</a>.\n\n"
                 f"Inline <svg onload=\"alert('{MARKER}')\"><circle r='2'/></svg> and "
                 f"<img src=x onerror=\"alert('{MARKER}')\">.\n\n"
                 f"Broken ![attached](attachment:../../etc/passwd)",
                 attachments={"../../etc/passwd": {"image/png": base64.b64encode(
                     f"root:x:0:0:{MARKER}".encode()).decode()}}),
        code("show_html()", display({"text/html": html_payloads, "text/plain": "html"})),
        code("show_svg()", display({"image/svg+xml": SVG, "text/plain": "svg"})),
        code("run_js()", display({"application/javascript": f"document.title = '{MARKER}'",
                                  "text/plain": "<IPython.core.display.Javascript object>"})),
        code("slider", display({"application/vnd.jupyter.widget-view+json": {
            "model_id": MARKER, "version_major": 2, "version_minor": 0}, "text/plain": "IntSlider(value=1)"})),
        code("markdown_output()", display({"text/markdown": f"[md output](javascript:alert('{MARKER}'))"})),
        code("picture()", display(
            {"image/png": png_base64()},
            {"image/png": {"width": f'100" onload="{MARKER}', "height": 10**9}, "width": f'1" onerror="{MARKER}'})),
        code("not_a_png()", display({"image/png": base64.b64encode(f"<svg onload={MARKER}>".encode()).decode()})),
    ], metadata={
        "language_info": {"name": f"python\" onload=\"{MARKER}"},
        "title": f"</title><script>{MARKER}</script>",
        "widgets": {"application/vnd.jupyter.widget-state+json": {
            "state": {MARKER: {"model_name": "IntSliderModel", "state": {"description": f"<script>{MARKER}"}}},
            "version_major": 2, "version_minor": 0}},
    })


class Elements(HTMLParser):
    """Every start tag of a page with its attributes, and where each <style> sits."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.open: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs), tuple(self.open)))
        if tag not in {"meta", "img", "br", "hr", "col", "input", "link", "base", "embed"}:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if tag in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag):]

    def named(self, name):
        return [attrs for tag, attrs, _ in self.tags if tag == name]


def assert_inert(page: str):
    """Nothing that runs, loads, navigates by itself or restyles from the notebook is left in the page."""
    assert MARKER not in page
    elements = Elements(page)
    tags = {tag for tag, _, _ in elements.tags}
    assert not tags & {"script", "iframe", "frame", "object", "embed", "form", "input", "base", "link", "svg",
                       "math", "applet", "textarea", "button"}
    # The one stylesheet is the page's own, in the head; the two metas are the page's own too.
    assert [parents for tag, _, parents in elements.tags if tag == "style"] == [("html", "head")]
    assert elements.named("meta") == [{"charset": "utf-8"},
                                      {"name": "viewport", "content": "width=device-width, initial-scale=1"}]
    for tag, attrs, _ in elements.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name not in {"style", "srcdoc", "formaction", "action", "background", "xlink:href"}, (tag, name)
            assert "javascript:" not in (value or "").lower().replace(" ", ""), (tag, name, value)
    for attrs in elements.named("img"):
        assert "src" not in attrs or attrs["src"].startswith(("data:image/png;base64,", "data:image/jpeg;base64,",
                                                              "data:image/svg+xml;base64,", "data:image/gif;base64,"))
        for dimension in ("width", "height"):
            assert dimension not in attrs or attrs[dimension].isdigit()
    for attrs in elements.named("a"):
        href = attrs.get("href")
        assert href is None or href.startswith(("#", "http://", "https://", "mailto:")), href


# --- render_notebook_html, in-process --------------------------------------------------------------------------

def test_a_normal_notebook_renders_its_code_markdown_outputs_and_images():
    page = render_notebook_html(normal_notebook())

    assert "<h1" in page and "Thermal expansion" in page and "<em>measured</em>" in page
    assert "hello from the notebook" in page  # the code (highlighted) and its stream output
    assert page.count("hello from the notebook") == 2
    assert "Out[2]:" in page and ">2</pre>" in page
    assert "ZeroDivisionError" in page and "division by zero" in page
    assert "<th>x</th>" in page and "<td>42</td>" in page  # an HTML table output stays a table
    images = Elements(page).named("img")
    srcs = [image["src"] for image in images]
    assert f"data:image/png;base64,{png_base64()}" in srcs
    assert f"data:image/jpeg;base64,{jpeg_base64()}" in srcs
    assert f"data:image/png;base64,{png_base64((3, 3))}" in srcs  # the markdown attachment
    plot = next(image for image in images if image["src"].endswith(png_base64()))
    assert (plot.get("width"), plot.get("height")) == ("320", "240")
    assert '<span class="nb">print</span>' in page  # pygments highlighting, styled by the page's own CSS
    assert ".highlight .nb" in page
    stylesheet = page.split("<style>")[1].split("</style>")[0]
    assert "url(" not in stylesheet and "@import" not in stylesheet  # the page's own CSS loads nothing
    assert_inert(page)


def test_hostile_outputs_markdown_and_metadata_are_neutralised():
    page = render_notebook_html(hostile_notebook())

    assert_inert(page)
    # What is refused says so, instead of silently vanishing.
    assert "A JavaScript output is not shown here" in page
    assert "An interactive widget is not shown here" in page
    assert "An image/png output is not shown: its bytes are not a image/png image" in page
    # Links keep their text but lose the javascript: target.
    for text in ("this markdown link", "this one", "html link", "md output"):
        assert text in page
    # The SVG output is only ever a picture: an <img> with a data URL, where SVG script never runs.
    svg_images = [image["src"] for image in Elements(page).named("img")
                  if image.get("src", "").startswith("data:image/svg+xml")]
    assert svg_images == [f"data:image/svg+xml;base64,{base64.b64encode(SVG.encode()).decode()}"]
    # The valid PNG with hostile metadata is shown, without width/height (neither was a sane integer).
    picture = [image for image in Elements(page).named("img") if image.get("src", "").endswith(png_base64())]
    assert len(picture) == 1 and "width" not in picture[0] and "height" not in picture[0]
    assert "styled" in page and "expression" not in page


def test_an_attachment_name_is_never_a_path_and_its_bytes_must_match_its_type(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.png").write_bytes(base64.b64decode(png_base64()))
    page = render_notebook_html(notebook([
        markdown("![a](attachment:../../etc/passwd) ![b](secret.png) ![c](attachment:missing.png) "
                 "<img src='secret.png'> ![d](attachment:fake.jpg)",
                 attachments={"../../etc/passwd": {"image/png": base64.b64encode(b"root:x:0:0").decode()},
                              "fake.jpg": {"image/jpeg": png_base64()}}),
    ]))

    srcs = [image.get("src") for image in Elements(page).named("img")]
    assert srcs == [None] * 5  # no picture: a wrong signature, a file next to the process, a missing name
    assert "root:x" not in page and base64.b64encode(b"root:x:0:0").decode() not in page
    assert png_base64() not in page
    assert_inert(page)


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not valid JSON"),
    (b'{"nbformat": 3, "nbformat_minor": 0, "worksheets": []}', "nbformat 3"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "<script>"}]}).encode(),
     "does not follow nbformat 4"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
])
def test_a_notebook_that_is_not_valid_is_refused_with_the_reason(raw, reason):
    with pytest.raises(NotebookRenderError) as raised:
        render_notebook_html(raw)

    assert reason in raised.value.message


def test_a_notebook_larger_than_the_limit_is_not_parsed(settings):
    settings.MAX_NOTEBOOK_SIZE = 100

    with pytest.raises(NotebookRenderError, match="larger than the 100 bytes"):
        render_notebook_html(normal_notebook())


def test_the_error_page_escapes_its_message():
    page = rendering.error_page(f"<script>{MARKER}</script> & <img src=x onerror=1>")

    assert "&lt;script&gt;" in page and "&lt;img src=x onerror=1&gt;" in page
    assert "<script" not in page and "<img" not in page


# --- The view ----------------------------------------------------------------------------------------------------

def submit(author, community, notebook_bytes: bytes, path="analysis.ipynb"):
    version = record_create(owner=author, metadata={
        "title": "Hostile", "description": "Payloads", "license": "CC-BY-4.0",
        "creators": [{"name": "Doe, Jane"}], "container_image": IMAGE,
    })
    upload(version, author, path, notebook_bytes)
    return review_submit(version=version, actor=author, community=community)


@pytest.fixture
def count_renders(monkeypatch):
    calls = []
    real = pages.run_worker

    def counting(notebook_bytes, **kwargs):
        calls.append(len(notebook_bytes))
        return real(notebook_bytes, **kwargs)

    monkeypatch.setattr(pages, "run_worker", counting)
    return calls


def render_url(review):
    return reverse("moderation:notebook_render", kwargs={"request_id": review.pk})


def test_the_request_page_embeds_the_rendering_in_a_sandboxed_iframe(client, review, community_moderator):
    client.force_login(community_moderator)

    page = client.get(reverse("moderation:request_detail", kwargs={"request_id": review.pk})).content.decode()

    frame = Elements(page).named("iframe")
    assert len(frame) == 1
    assert frame[0]["src"] == render_url(review) and frame[0]["title"] == "Rendered notebook"
    assert frame[0]["sandbox"] in ("", None)  # present and empty: no allow-scripts, no allow-same-origin
    assert "allow-" not in page
    download = reverse("moderation:notebook_download", kwargs={"request_id": review.pk})
    assert f'href="{download}"' in page


def test_the_rendered_page_has_the_strict_headers(client, review, community_moderator, count_renders):
    client.force_login(community_moderator)

    response = client.get(render_url(review))

    assert response.status_code == 200
    for header, value in EXPECTED_HEADERS.items():
        assert response[header] == value, header
    page = response.content.decode()
    assert "Thermal expansion of a copper rod" in page and "measurements from 293 K to 403 K" in page
    assert_inert(page)
    assert count_renders == [review.version.files.get(path="thermal.ipynb").blob.size]


def test_a_hostile_notebook_is_served_neutralised(client, author, community, community_moderator):
    review = submit(author, community, hostile_notebook())
    client.force_login(community_moderator)

    response = client.get(render_url(review))

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == EXPECTED_HEADERS["Content-Security-Policy"]
    assert_inert(response.content.decode())
    assert "A JavaScript output is not shown here" in response.content.decode()


def test_the_author_and_any_moderator_of_the_community_see_it_others_get_404(
        client, review, author, global_moderator, other_community_moderator, count_renders):
    for user in (UserFactory(username="stranger"), other_community_moderator):
        client.force_login(user)
        assert client.get(render_url(review)).status_code == 404
        assert client.get(reverse("moderation:notebook_download", kwargs={"request_id": review.pk})).status_code == 404
    assert client.get(reverse("moderation:notebook_render", kwargs={"request_id": 999999})).status_code == 404
    assert count_renders == []  # nothing is rendered for someone who may not see it
    client.logout()
    assert client.get(render_url(review)).status_code == 302  # to the login page
    for user in (author, global_moderator):
        client.force_login(user)
        assert client.get(render_url(review)).status_code == 200


def test_the_raw_notebook_downloads_as_an_attachment(client, review, community_moderator):
    client.force_login(community_moderator)

    response = client.get(reverse("moderation:notebook_download", kwargs={"request_id": review.pk}))

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="thermal.ipynb"'
    assert response["X-Content-Type-Options"] == "nosniff"
    notebook_file = review.version.files.select_related("blob").get(path="thermal.ipynb")
    with storage.open_blob(notebook_file.blob.storage_key) as handle:
        assert b"".join(response.streaming_content) == handle.read()


def test_the_rendering_is_computed_once_and_cached_by_sha256(client, review, author, community_moderator,
                                                             count_renders, own_var_dir):
    client.force_login(community_moderator)
    first = client.get(render_url(review))
    client.force_login(author)
    second = client.get(render_url(review))

    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert len(count_renders) == 1
    sha256 = review.version.files.get(path="thermal.ipynb").blob.sha256
    assert [path.name for path in (own_var_dir / "rendered").rglob("*.html")] == [
        f"{sha256}.v{rendering.RENDERER_VERSION}.200.html"]


def test_a_render_that_takes_too_long_gives_a_clear_page_not_a_hang(client, review, community_moderator, settings,
                                                                     count_renders):
    settings.NOTEBOOK_RENDER_TIMEOUT = 0.05  # less than the worker needs to start
    client.force_login(community_moderator)

    response = client.get(render_url(review))

    assert response.status_code == 503
    assert "could not be rendered in time" in response.content.decode()
    assert response["Content-Security-Policy"] == EXPECTED_HEADERS["Content-Security-Policy"]
    # Remembered for a while (a second request does not start another worker) ...
    assert client.get(render_url(review)).status_code == 503 and len(count_renders) == 1
    # ... and tried again once that while is over.
    settings.NOTEBOOK_RENDER_RETRY_AFTER = -1
    settings.NOTEBOOK_RENDER_TIMEOUT = 60
    assert client.get(render_url(review)).status_code == 200 and len(count_renders) == 2


def test_a_worker_stuck_in_markdown_is_killed_at_the_time_limit(settings, monkeypatch):
    # A stand-in for a renderer caught in a pathological markdown input: it never finishes.
    monkeypatch.setattr(worker, "worker_command",
                        lambda max_size, memory: [__import__("sys").executable, "-c", "import time; time.sleep(120)"])
    started = time.monotonic()

    result = worker.run_worker(normal_notebook(), timeout=1, max_size=10**6, memory=2 * 1024**3)

    assert time.monotonic() - started < 10
    assert result.status == 503 and "could not be rendered in time" in result.html


def test_an_unreadable_or_invalid_stored_notebook_gives_an_escaped_error_page_never_a_500(local_blob_storage):
    bad = b'{"nbformat": 4, "cells": "<script>PWN</script>"'
    stored = storage.store_stream(io.BytesIO(bad), max_size=10**6)
    blob = Blob.objects.create(sha256=stored.sha256, md5=stored.md5, size=stored.size, storage_key=stored.storage_key)

    result = rendering.rendered_page(blob)

    assert result.status == 422
    assert "The notebook cannot be shown: The notebook is not valid JSON" in result.html
    assert "<script" not in result.html
    storage.blob_storage().delete(stored.storage_key)
    Blob.objects.filter(pk=blob.pk).update(sha256="f" * 64)
    blob.refresh_from_db()
    missing = rendering.rendered_page(blob)
    assert missing.status == 503 and "could not be read right now" in missing.html


def test_a_crashing_worker_gives_an_error_page(monkeypatch):
    monkeypatch.setattr(worker, "worker_command",
                        lambda max_size, memory: [__import__("sys").executable, "-c", "raise SystemExit(9)"])

    result = worker.run_worker(normal_notebook(), timeout=30, max_size=10**6, memory=2 * 1024**3)

    assert result.status == 503 and "could not be rendered" in result.html


def test_simultaneous_views_of_a_notebook_not_yet_rendered_start_one_worker(review, count_renders):
    # Each worker may take seconds and gigabytes; a crowd of first views must not multiply them.
    import threading

    blob = review.version.files.get(path="thermal.ipynb").blob
    pages_seen = []
    views = [threading.Thread(target=lambda: pages_seen.append(rendering.rendered_page(blob))) for _ in range(4)]

    for view in views:
        view.start()
    for view in views:
        view.join(timeout=120)

    assert count_renders == [blob.size]
    assert [page.status for page in pages_seen] == [200] * 4
    assert len({page.html for page in pages_seen}) == 1
