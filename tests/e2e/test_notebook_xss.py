"""The rendered notebook in a real browser: a moderator opens a request whose notebook is full of script payloads.

Each payload would, if it ran anywhere, set `document.title` and `parent.document.title` to "pwned", open an
alert, and add an element with id `xss-ran` to its document. The test looks at the top page's title, for an
open alert, and inside the sandboxed iframe for any such element, after loading the page and after clicking the
javascript: links. A control at the start shows that the same checks do see a payload that runs.
"""

import base64
import json

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from moderation.models import Community
from moderation.services import review_submit
from repository import demo
from repository.services.drafts import record_create
from tests.factories import IMAGE, UserFactory, png_base64, upload

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.common.exceptions import NoAlertPresentException  # after the skip: without selenium the module is skipped
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 30  # the first view of a notebook renders it in a worker process
# No spaces (it is also a markdown link target), and the marker id is built at run time, so that no markup of the
# payload text itself can create the element the test looks for.
RUN = ("document.title='pwned';try{parent.document.title='pwned'}catch(e){};document.body.appendChild("
       "Object.assign(document.createElement('p'),{id:'xss'+'-ran',textContent:'script'+'ran'}));alert(1)")
SVG = (f'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" onload="{RUN}">'
       f'<rect width="120" height="40" fill="#3a7"/><script>{RUN}</script></svg>')


def cell(kind, source, outputs=()):
    base = {"cell_type": kind, "id": f"c{abs(hash(source)) % 10**8}", "metadata": {}, "source": source}
    if kind == "code":
        base.update(execution_count=1, outputs=list(outputs))
    return base


def display(data):
    return {"output_type": "display_data", "data": data, "metadata": {}}


def hostile_notebook() -> bytes:
    cells = [
        cell("markdown", "# Hostile payloads\n\nEvery output below tries to run script.\n\n"
                         f"[markdown javascript link](javascript:{RUN})\n\n"
                         f"<a id=\"html-js-link\" href=\"javascript:{RUN}\">html javascript link</a>\n\n"
                         f"<img src=x onerror=\"{RUN}\"> <svg onload=\"{RUN}\"></svg>"),
        cell("code", "script_output()", [display({"text/html": f"<p>before</p><script>{RUN}</script><p>after</p>",
                                                  "text/plain": "html"})]),
        cell("code", "img_onerror()", [display({"text/html": f"<img src=x onerror=\"{RUN}\">broken image",
                                                "text/plain": "img"})]),
        cell("code", "svg_output()", [display({"image/svg+xml": SVG, "text/plain": "svg"})]),
        cell("code", "inline_svg()", [display({"text/html": f"<svg onload=\"{RUN}\"><circle r='5'/></svg>",
                                               "text/plain": "inline svg"})]),
        cell("code", "javascript_output()", [display({"application/javascript": RUN,
                                                      "text/plain": "<Javascript object>"})]),
        cell("code", "widget()", [display({"application/vnd.jupyter.widget-view+json": {
            "model_id": "m1", "version_major": 2, "version_minor": 0}, "text/plain": "IntSlider(value=3)"})]),
        cell("code", "plot()", [display({"image/png": png_base64((240, 120), (40, 110, 200)),
                                         "text/plain": "<Figure>"})]),
    ]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"language_info": {"name": "python"}},
                       "cells": cells}).encode()


@pytest.fixture(autouse=True)
def isolated(settings, tmp_path, monkeypatch):
    """An own render cache; the verification task queued at submission is only recorded, never sent."""
    from repository import tasks

    settings.VAR_DIR = tmp_path / "var"
    monkeypatch.setattr(tasks.run_verification_task, "apply_async", lambda *args, **kwargs: None)


def submitted(notebook: bytes, title: str):
    author = UserFactory(username=f"author-{title.lower().replace(' ', '-')}")
    community, _ = Community.objects.get_or_create(slug="materials", defaults={"name": "Materials"})
    version = record_create(owner=author, metadata={
        "title": title, "description": "Rendered in the browser", "license": "CC-BY-4.0",
        "creators": [{"name": "Doe, Jane"}], "container_image": IMAGE,
    })
    upload(version, author, "analysis.ipynb", notebook)
    upload(version, author, demo.DATA_PATH, demo.measurements_csv())
    return review_submit(version=version, actor=author, community=community), community


def log_in(browser, live_server, user) -> None:
    """Put a real session of `user` into the browser (the login form is the deposit flow test's business)."""
    client = Client()
    client.force_login(user)
    browser.get(live_server.url + "/static/does-not-exist")  # any page of the origin, to set its cookie
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME,
                        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                        "path": "/"})


def assert_no_alert(browser) -> None:
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - the property access is the check


def open_request(browser, live_server, review, heading: str):
    browser.get(live_server.url + reverse("moderation:request_detail", kwargs={"request_id": review.pk}))
    WebDriverWait(browser, WAIT_SECONDS).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), heading))
    frame = browser.find_element(By.CSS_SELECTOR, "iframe[title='Rendered notebook']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", frame)
    return frame


def wait_in_frame(browser, frame, text: str):
    """Switch into the iframe once its rendered notebook shows `text`."""
    def loaded(driver):
        driver.switch_to.default_content()
        driver.switch_to.frame(frame)
        return text in driver.find_element(By.TAG_NAME, "body").text
    WebDriverWait(browser, WAIT_SECONDS).until(loaded, f"the rendered notebook never showed {text!r}")


def test_the_checks_see_a_payload_that_does_run(browser):
    # Control: the same payload in an ordinary page does everything the real test asserts never happens.
    browser.get("data:text/html;base64," + base64.b64encode(f"<body><script>{RUN}</script></body>".encode()).decode())
    assert browser.switch_to.alert.text == "1"
    browser.switch_to.alert.accept()
    assert browser.title == "pwned"
    assert browser.find_elements(By.ID, "xss-ran")


def test_no_payload_in_a_rendered_notebook_runs(browser, live_server, screenshot):
    review, community = submitted(hostile_notebook(), "Hostile payloads")
    moderator = UserFactory(username="moderator")
    community.moderators.add(moderator)
    log_in(browser, live_server, moderator)

    frame = open_request(browser, live_server, review, "Hostile payloads")
    top_title = browser.title
    assert top_title == "Review · Hostile payloads · nbarchive"
    assert frame.get_attribute("sandbox") == ""
    wait_in_frame(browser, frame, "Every output below tries to run script.")

    # Inside the frame: the notebook is there, the payloads' targets are not.
    body = browser.find_element(By.TAG_NAME, "body").text
    for shown in ("before", "after", "broken image", "A JavaScript output is not shown here",
                  "An interactive widget is not shown here", "markdown javascript link", "html javascript link"):
        assert shown in body
    assert browser.find_elements(By.ID, "xss-ran") == []
    assert browser.find_element(By.TAG_NAME, "title").get_attribute("textContent") == "Rendered notebook"
    assert browser.find_elements(By.TAG_NAME, "script") == []
    svg = [image for image in browser.find_elements(By.TAG_NAME, "img")
           if (image.get_attribute("src") or "").startswith("data:image/svg+xml")]
    assert len(svg) == 1 and svg[0].size["width"] == 120  # the SVG shows, as a picture
    browser.switch_to.default_content()
    assert_no_alert(browser)
    assert browser.title == top_title

    # Clicking the (defused) javascript: links runs nothing either.
    for link_text in ("markdown javascript link", "html javascript link"):
        browser.switch_to.frame(frame)
        browser.find_element(By.LINK_TEXT, link_text).click()
        browser.switch_to.default_content()
        assert_no_alert(browser)
        assert browser.title == top_title
    browser.switch_to.frame(frame)
    assert browser.find_elements(By.ID, "xss-ran") == []
    assert "Every output below tries to run script." in browser.find_element(By.TAG_NAME, "body").text
    browser.switch_to.default_content()

    screenshot("notebook-xss-request-page-window", full_page=False)
    browser.execute_script("window.scrollTo(0, 0);")
    screenshot("notebook-xss-request-page")
    assert_no_alert(browser)
    assert browser.title == top_title


def test_a_normal_notebook_reads_like_a_notebook(browser, live_server, screenshot):
    review, community = submitted(demo.notebook(), "Thermal expansion")
    moderator = UserFactory(username="reader")
    community.moderators.add(moderator)
    log_in(browser, live_server, moderator)

    frame = open_request(browser, live_server, review, "Thermal expansion")
    wait_in_frame(browser, frame, "Thermal expansion of a copper rod")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "12 measurements from 293 K to 403 K" in body and "linear expansion coefficient" in body
    assert "In [1]:" in body
    # The notebook's own stylesheet applies: code cells sit in their grey input area.
    area = browser.find_element(By.CSS_SELECTOR, ".input_area")
    assert area.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"
    browser.switch_to.default_content()
    screenshot("notebook-render-request-page-window", full_page=False)
