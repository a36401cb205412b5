"""The pages under their Content-Security-Policy in Chromium: nothing of ours is blocked, and what needs script
(the deposit form's "Add" buttons, the API docs' Swagger UI, the rendered notebook's frame) still works.

Every violation the browser reports (`securitypolicyviolation` events, recorded from before any page script runs)
fails the test, so a template that gains an inline script or style attribute is caught here.
"""

import pytest
from django.urls import reverse

from tests.e2e.test_notebook_xss import log_in, open_request, submitted, wait_in_frame
from tests.factories import UserFactory, demo_draft

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # after the skip: without selenium the module is skipped
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 30
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " blocked " + (event.blockedURI || "inline") +
                              " at " + event.documentURI + ":" + event.lineNumber);
});
"""


@pytest.fixture(autouse=True)
def isolated(settings, tmp_path, monkeypatch):
    from repository import tasks

    settings.VAR_DIR = tmp_path / "var"
    monkeypatch.setattr(tasks.run_verification_task, "apply_async", lambda *args, **kwargs: None)


@pytest.fixture
def watched(browser):
    """The browser, recording every CSP violation of every page (and frame) it opens from now on."""
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})
    return browser


def violations(browser) -> list[str]:
    return browser.execute_script("return window.__cspViolations || [];")


def visit(browser, url: str, ready_selector: str = "main") -> None:
    browser.get(url)
    WebDriverWait(browser, WAIT_SECONDS).until(EC.presence_of_element_located((By.CSS_SELECTOR, ready_selector)))
    assert violations(browser) == [], url


def test_the_deposit_pages_work_with_nothing_blocked(watched, live_server):
    author = UserFactory(username="csp-author")
    draft = demo_draft(author)
    log_in(watched, live_server, author)
    record_id = draft.record.public_id

    for name in ("repository:home", "repository:my_uploads", "repository:draft_new", "repository:tokens"):
        visit(watched, live_server.url + reverse(name))
    visit(watched, live_server.url + reverse("repository:draft_detail", kwargs={"record_id": record_id}))
    visit(watched, live_server.url + reverse("repository:draft_edit", kwargs={"record_id": record_id}))

    # site.js still runs: the "Add creator" button is shown and adds a row.
    formset = watched.find_element(By.CSS_SELECTOR, "[data-formset='creators']")
    rows_before = len(formset.find_elements(By.CSS_SELECTOR, "[data-formset-rows] > *"))
    add = formset.find_element(By.CSS_SELECTOR, "[data-formset-add]")
    watched.execute_script("arguments[0].scrollIntoView({block: 'center'});", add)  # clear of the sticky bar
    add.click()
    assert len(formset.find_elements(By.CSS_SELECTOR, "[data-formset-rows] > *")) == rows_before + 1
    assert violations(watched) == []


def test_the_review_page_shows_the_rendered_notebook_with_nothing_blocked(watched, live_server):
    from repository import demo

    review, community = submitted(demo.notebook(), "Thermal expansion")
    moderator = UserFactory(username="csp-moderator")
    community.moderators.add(moderator)
    log_in(watched, live_server, moderator)

    visit(watched, live_server.url + reverse("moderation:queue"))
    frame = open_request(watched, live_server, review, "Thermal expansion")
    assert frame.value_of_css_property("height") != "150px"  # the class sized it (150 px is an unstyled iframe)
    wait_in_frame(watched, frame, "Thermal expansion of a copper rod")
    assert violations(watched) == []  # inside the frame, under the notebook's own policy
    watched.switch_to.default_content()
    assert violations(watched) == []


def test_the_api_docs_and_account_pages_work_with_nothing_blocked(watched, live_server):
    visit(watched, live_server.url + reverse("account_login"))
    visit(watched, live_server.url + reverse("account_signup"))
    watched.get(live_server.url + reverse("api:docs"))
    WebDriverWait(watched, WAIT_SECONDS).until(
        EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".swagger-ui .info .title"), "nbarchive API"))
    WebDriverWait(watched, WAIT_SECONDS).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    assert violations(watched) == []


def test_the_admin_works_with_nothing_blocked(watched, live_server):
    admin = UserFactory(username="csp-admin", is_staff=True, is_superuser=True)
    log_in(watched, live_server, admin)

    visit(watched, live_server.url + "/admin/", "#content")
    visit(watched, live_server.url + "/admin/moderation/community/", "#content")
    visit(watched, live_server.url + "/admin/moderation/community/add/", "#community_form")
    # SelectFilter2.js turned the moderators' list into its two-box widget.
    WebDriverWait(watched, WAIT_SECONDS).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".selector")))
    assert violations(watched) == []


def test_the_request_page_swaps_in_the_notebook_diff_once_a_worker_has_prepared_it(watched, live_server,
                                                                                    monkeypatch):
    import json

    from moderation import tasks
    from moderation.models import Community, ReviewRequest
    from repository.models import Version
    from tests.factories import notebook_dict, upload

    queued = []
    monkeypatch.setattr(tasks.cell_diff_prepare_task, "delay", queued.append)
    author, moderator = UserFactory(username="diff-author"), UserFactory(username="diff-moderator")
    community = Community.objects.create(slug="diffs", name="Diffs")
    community.moderators.add(moderator)
    first = demo_draft(author)
    notebook = notebook_dict()
    first.files.filter(path=first.notebook_path).delete()
    upload(first, author, first.notebook_path, json.dumps(notebook).encode())
    Version.objects.filter(pk=first.pk).update(state=Version.State.PUBLISHED)
    second = Version.objects.create(record=first.record, number=2, created_by=author, title="Second look",
                                    license=first.license, notebook_path=first.notebook_path)
    notebook["cells"][1]["source"] = "print('changed in the second version')"
    upload(second, author, second.notebook_path, json.dumps(notebook).encode())
    Version.objects.filter(pk=second.pk).update(state=Version.State.IN_REVIEW)
    review = ReviewRequest.objects.create(version=second, community=community, submitted_by=author)
    log_in(watched, live_server, moderator)

    visit(watched, live_server.url + reverse("moderation:request_detail", kwargs={"request_id": review.pk}))
    assert "The diff is being prepared" in watched.find_element(By.ID, "cell-diff").text
    watched.find_element(By.ID, "decision-comment").send_keys("Half-typed comment")
    tasks.cell_diff_prepare_task.apply(args=queued[:1])  # the worker

    WebDriverWait(watched, WAIT_SECONDS).until(
        EC.text_to_be_present_in_element((By.ID, "cell-diff"), "changed in the second version"))
    assert "+++ v2" in watched.find_element(By.ID, "cell-diff").text
    assert watched.find_element(By.ID, "decision-comment").get_attribute("value") == "Half-typed comment"
    assert violations(watched) == []
