"""Every route that hands out a published version's bytes or notebook content, walked by every actor in every
access state (issue 17): each cell checks the status and that no byte of a closed file reaches the body.

The version is published through the real review flow (submitted to a community, accepted by its moderator), with
a notebook and a data file that carry a marker string, and a finished verification run whose report, logs and
executed notebook carry it too. Closed files answer 403 wherever the route is public (repository.access.serving);
the landing page and the public report stay 200 and show no content. The expected table is computed from one
small rule, written out below, so a leak shows up as one failing cell named by its route.
"""

import datetime
import hashlib
import io
import json
import zipfile

import nbformat
import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from harvest.provider.protocol import oai_identifier
from moderation.models import Community
from moderation.services import review_act, review_submit
from repository.access.http import SESSION_KEY
from repository.access.models import AccessGrant, AccessRequest, ShareLink
from repository.models import ExecutionRun, FileAccess, Verdict, Version
from repository.permissions import MODERATORS_GROUP
from repository.selectors import version_metadata
from repository.services.drafts import draft_update
from tests.factories import UserFactory, demo_draft, published_version, sync_pending, upload

pytestmark = pytest.mark.django_db

MARKER = "SECRET-7f3a9c-MARKER"
SHARE_TOKEN = "share-token-for-the-referees-0123456789"
NOTEBOOK_PATH = "secret.ipynb"
DATA_PATH = "data/secret.csv"

ACTORS = ["anonymous", "stranger", "requester", "grantee", "share_link", "share_session", "owner",
          "community_moderator", "global_moderator", "admin"]
PRIVILEGED = {"owner", "community_moderator", "global_moderator", "admin"}
STATES = ["open", "embargoed", "embargo_passed", "restricted"]


def may_read(actor: str, state: str) -> bool:
    """The rule the routes must follow (repository.access.policy)."""
    if state in ("open", "embargo_passed") or actor in PRIVILEGED:
        return True
    return state == "restricted" and actor in ("grantee", "share_link", "share_session")


def secret_notebook() -> bytes:
    notebook = new_notebook(cells=[
        # Fixed cell ids: the same bytes in every test, so the notebook is rendered once for the whole matrix.
        new_markdown_cell(f"# Results {MARKER}", id="heading"),
        new_code_cell("print(secret)", id="c1", execution_count=1,
                      outputs=[new_output("stream", name="stdout", text=f"{MARKER}\n")]),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    return nbformat.writes(notebook).encode()


@pytest.fixture(scope="session")
def render_cache(tmp_path_factory):
    # One render cache for the whole matrix: every version holds the same notebook, so it is rendered once.
    return tmp_path_factory.mktemp("render-cache")


@pytest.fixture(autouse=True)
def isolated(settings, render_cache, monkeypatch):
    settings.VAR_DIR = render_cache
    settings.DOI_PROVIDER = "local"
    cache.clear()
    from repository import tasks

    monkeypatch.setattr(tasks.run_verification_task, "apply_async", lambda *a, **k: None)


@pytest.fixture
def people(db):
    community = Community.objects.create(slug="materials", name="Materials")
    people = {name: UserFactory(username=name) for name in
              ("stranger", "requester", "grantee", "owner", "community_moderator", "global_moderator")}
    people["admin"] = UserFactory(username="admin", is_staff=True, is_superuser=True)
    community.moderators.add(people["community_moderator"])
    people["global_moderator"].groups.add(Group.objects.get_or_create(name=MODERATORS_GROUP)[0])
    people["community"] = community
    return people


def publish_reviewed(owner, community, moderator) -> tuple[Version, int]:
    """A version with the marked notebook and data file, submitted to `community` and accepted by `moderator`."""
    draft = demo_draft(owner, title="Embargoed results")
    upload(draft, owner, NOTEBOOK_PATH, secret_notebook())
    upload(draft, owner, DATA_PATH, f"x,y\n1,{MARKER}\n".encode())
    draft_update(version=draft, actor=owner, metadata={**version_metadata(draft), "notebook_path": NOTEBOOK_PATH})
    review = review_submit(version=draft, actor=owner, community=community)
    review_act(request_id=review.pk, action="accept", actor=moderator)
    sync_pending()
    version = Version.objects.get(pk=draft.pk)
    assert version.state == Version.State.PUBLISHED
    return version, review.pk


def finished_run(version: Version) -> ExecutionRun:
    """A finished run of the version whose report, logs and executed notebook hold the marker."""
    notebook = version.files.select_related("blob").get(path=NOTEBOOK_PATH)
    return ExecutionRun.objects.create(
        version=version, runner="local", notebook_path=NOTEBOOK_PATH, status=ExecutionRun.Status.FINISHED,
        verdict=Verdict.REPRODUCED_WITH_DIFFERENCES, message="Outputs differ within what was allowed.",
        finished_at=timezone.now(), logs=f"kernel said {MARKER}", executed_notebook=notebook.blob,
        report={"summary": {"code_cells": 1, "differ": 1}, "notes": ["Cell 1 differs."],
                "execution": {"outcome": "completed", "message": f"ValueError: {MARKER}"},
                "cells": [{"index": 1, "cell_id": "c1", "execution_count": 1, "status": "differs", "tags": [],
                           "rules": [], "source": f"print('{MARKER}')", "hint": f"look at {MARKER}",
                           "outputs": [{"output_type": "stream", "name": "stdout", "status": "differs",
                                        "expected": MARKER, "actual": "other", "diff": f"-{MARKER}\n+other"}]}]})


@pytest.fixture
def world(people):
    version, review_pk = publish_reviewed(people["owner"], people["community"], people["community_moderator"])
    record = version.record
    AccessRequest.objects.create(record=record, number=1, requester=people["requester"], message="May I?")
    accepted = AccessRequest.objects.create(record=record, number=2, requester=people["grantee"], message="Please",
                                            state=AccessRequest.State.ACCEPTED)
    AccessGrant.objects.create(record=record, user=people["grantee"], granted_by=people["owner"], request=accepted)
    link = ShareLink.objects.create(record=record, created_by=people["owner"], label="Referee 2",
                                    token_sha256=hashlib.sha256(SHARE_TOKEN.encode()).hexdigest())
    return {"version": version, "review_pk": review_pk, "run": finished_run(version), "link": link, **people}


def set_state(version: Version, state: str) -> None:
    today = timezone.now().date()
    access, until = {
        "open": (FileAccess.OPEN, None),
        "embargoed": (FileAccess.EMBARGOED, today + datetime.timedelta(days=30)),
        "embargo_passed": (FileAccess.EMBARGOED, today - datetime.timedelta(days=1)),
        "restricted": (FileAccess.RESTRICTED, None),
    }[state]
    Version.objects.filter(pk=version.pk).update(access_files=access, embargo_until=until)


def client_for(world, actor: str) -> tuple[Client, str]:
    """A browser (session) for the actor, and the query string it adds to every URL."""
    client = Client()
    if actor in world:
        client.force_login(world[actor])
    if actor == "share_session":
        session = client.session
        session[SESSION_KEY] = [world["link"].pk]
        session.save()
    return client, f"?share={SHARE_TOKEN}" if actor == "share_link" else ""


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def routes(world) -> dict[str, str]:
    version, run = world["version"], world["run"]
    record_id = version.record.public_id
    base = f"/records/{record_id}/versions/{version.number}"
    identifier = oai_identifier(record_id, version.number)
    return {
        "file": f"{base}/files/{DATA_PATH}",
        "notebook_file": f"{base}/files/{NOTEBOOK_PATH}",
        "notebook_frame": f"{base}/notebook/",
        "download_all": f"{base}/download-all.zip",
        "landing": f"{base}/",
        "report": f"/runs/{run.run_id}/",
        "api_run": f"/api/runs/{run.run_id}",
        "api_executed_notebook": f"/api/runs/{run.run_id}/executed-notebook",
        "api_version": f"/api/records/{version.record.public_id}/versions/{version.number}",
        "review_notebook": f"/requests/{world['review_pk']}/notebook/",
        "review_notebook_download": f"/requests/{world['review_pk']}/notebook/download/",
        # The concept's URLs serve the latest version (this one).
        "concept_landing": f"/records/{record_id}/",
        "api_record": f"/api/records/{record_id}",
        # Metadata, public in every state: never notebook content, and file links only while the files are open.
        "concept_jsonld": f"/records/{record_id}/?format=jsonld",
        "jsonld": f"{base}/?format=jsonld",
        "linkset": f"{base}/linkset",
        "datacite": f"{base}/export/datacite-json",
        "bibtex": f"{base}/export/bibtex",
        "api_jsonld": f"/api/records/{record_id}/versions/{version.number}?format=jsonld",
        "oai_dc": f"/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier={identifier}",
        "oai_datacite": f"/oai?verb=GetRecord&metadataPrefix=oai_datacite&identifier={identifier}",
        "badge": f"{base}/badge.svg",
    }


# Metadata routes: the same for every reader, never any notebook content, and links to the files (JSON-LD's
# contentUrl, Signposting's items) only while the files are open to everyone.
METADATA_ROUTES = {"concept_jsonld", "jsonld", "linkset", "datacite", "bibtex", "api_jsonld", "oai_dc",
                   "oai_datacite", "badge"}
LINKING_ROUTES = {"concept_jsonld", "jsonld", "linkset", "api_jsonld"}
# Routes whose page stays public whatever the access (metadata, verdict): 200, the content left out.
ALWAYS_PUBLIC = {"landing", "concept_landing", "report", "api_run", "api_version", "api_record", *METADATA_ROUTES}
# The review request's pages: the owners and the request's moderators only, as before (404 for others, a login
# first for anonymous readers); those are always among who may read the files.
REVIEW_ROUTES = {"review_notebook", "review_notebook_download"}


def expected_status(route: str, actor: str, state: str) -> int:
    if route in REVIEW_ROUTES:
        if actor in PRIVILEGED:
            return 200
        return 302 if actor in ("anonymous", "share_link", "share_session") else 404
    if route in ALWAYS_PUBLIC:
        return 200
    return 200 if may_read(actor, state) else 403


def check_cell(world, client, query, route, url, actor, state) -> list[str]:
    """What is wrong with one cell of the matrix (nothing: an empty list)."""
    response = client.get(url + (query.replace("?", "&") if "?" in url else query))
    body = body_of(response)
    problems = []
    status = expected_status(route, actor, state)
    if response.status_code != status:
        problems.append(f"{route}: status {response.status_code}, expected {status}")
    readable = may_read(actor, state) and status == 200
    if route == "download_all" and response.status_code == 200:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            body = b"".join(archive.read(name) for name in archive.namelist())
    shows_marker = MARKER.encode() in body
    if route in METADATA_ROUTES:
        files_open = state in ("open", "embargo_passed")
        if shows_marker:
            problems.append(f"{route}: the marker (notebook or file content) is in the metadata")
        if route in LINKING_ROUTES and (f"/files/{DATA_PATH}" in body.decode()) != files_open:
            problems.append(f"{route}: file links {'missing' if files_open else 'given'} while the files are "
                            f"{'open' if files_open else 'closed'}")
    elif route in ("landing", "concept_landing"):
        # The page itself stays; the notebook frame and the download links give way to the notice.
        html = body.decode()
        if shows_marker and not readable:
            problems.append(f"{route}: the marker (a heading of the notebook) is on the page")
        if ('id="notebook-frame"' in html) != readable or ('id="download-all"' in html) != readable:
            problems.append(f"{route}: notebook frame or download links {'missing' if readable else 'shown'}")
        if ('id="files-closed"' in html) == readable:
            problems.append(f"{route}: the closed-files notice is {'shown' if readable else 'missing'}")
    elif route in ("api_version", "api_record"):
        data = json.loads(body)
        files = {f["path"]: f for f in data["files"]}
        if ("download" in files[DATA_PATH]["links"]) != readable or ("archive" in data["links"]) != readable:
            problems.append(f"{route}: download links {'missing' if readable else 'given'}")
    elif shows_marker != readable:
        problems.append(f"{route}: the marker is {'missing' if readable else 'in the body'}")
    # The metadata routes answer every reader alike (the badge is cached publicly for a few minutes, on purpose).
    if (state in ("embargoed", "restricted") and route not in METADATA_ROUTES
            and "public" in response.get("Cache-Control", "")):
        problems.append(f"{route}: closed files made publicly cacheable")
    return problems


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("actor", ACTORS)
def test_every_route_serves_closed_files_only_to_those_who_may_read_them(world, actor, state):
    set_state(world["version"], state)
    client, query = client_for(world, actor)

    problems = [problem for route, url in routes(world).items()
                for problem in check_cell(world, client, query, route, url, actor, state)]

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("route", ["file", "notebook_frame", "download_all"])
def test_what_the_privileged_get_of_closed_files_is_never_publicly_cached(world, route):
    set_state(world["version"], "restricted")
    client, _ = client_for(world, "owner")

    response = client.get(routes(world)[route])

    assert response.status_code == 200
    assert "public" not in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_a_closed_file_says_why_and_until_when(world):
    set_state(world["version"], "embargoed")
    until = Version.objects.get(pk=world["version"].pk).embargo_until

    response = Client().get(routes(world)["file"])

    assert response.status_code == 403
    assert f"embargoed until {until:%Y-%m-%d}" in response.content.decode()


def test_the_api_says_403_as_problem_json_for_the_executed_notebook(world):
    set_state(world["version"], "restricted")

    response = Client().get(routes(world)["api_executed_notebook"])

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert "restricted" in response.json()["detail"]


def test_a_revoked_share_link_opens_nothing_any_more(world):
    set_state(world["version"], "restricted")
    client, query = client_for(world, "share_session")
    assert client.get(routes(world)["file"]).status_code == 200
    ShareLink.objects.filter(pk=world["link"].pk).update(revoked_at=timezone.now())

    assert client.get(routes(world)["file"]).status_code == 403
    assert Client().get(routes(world)["file"] + f"?share={SHARE_TOKEN}").status_code == 403


def test_the_public_report_keeps_the_verdict_and_each_cells_status(world):
    set_state(world["version"], "restricted")

    html = Client().get(routes(world)["report"]).content.decode()
    data = Client().get(routes(world)["api_run"]).json()

    assert "Reproduced with differences" in html and 'id="cell-1"' in html and "Differs" in html
    assert data["verdict"] == "reproduced_with_differences"
    assert data["report"]["cells"] == [{"index": 1, "cell_id": "c1", "execution_count": 1, "status": "differs",
                                        "tags": [], "rules": []}]
    assert data["logs"] == "" and "executed_notebook" not in data["links"]


def test_presigned_urls_are_minted_only_for_readers(world, local_blob_storage, s3_blob_storage):
    s3, bucket = s3_blob_storage
    version = world["version"]
    for version_file in version.files.select_related("blob"):  # published on local storage; now in the bucket
        key = version_file.blob.storage_key
        s3.put_object(Bucket=bucket, Key=key, Body=(local_blob_storage / key).read_bytes())
    set_state(version, "restricted")
    url = routes(world)["file"]
    owner, _ = client_for(world, "owner")

    refused = Client().get(url)
    allowed = owner.get(url)

    assert refused.status_code == 403 and "Location" not in refused
    assert allowed.status_code == 302 and "X-Amz-Signature" in allowed["Location"]


def test_scholarly_indexers_are_not_sent_to_a_closed_pdf(people):
    version = published_version(people["owner"], people["admin"], extra_files={"paper.pdf": b"%PDF-1.4\n%%EOF\n"})
    landing = f"/records/{version.record.public_id}/versions/{version.number}/"
    assert 'name="citation_pdf_url"' in Client().get(landing).content.decode()

    set_state(version, "embargoed")

    assert 'name="citation_pdf_url"' not in Client().get(landing).content.decode()


def test_an_api_client_with_a_share_link_gets_download_links_that_open(world):
    set_state(world["version"], "restricted")
    api_version = routes(world)["api_version"]

    files = Client().get(f"{api_version}?share={SHARE_TOKEN}").json()["files"]
    download = next(f["links"]["download"] for f in files if f["path"] == DATA_PATH)

    response = Client().get(download)  # a fresh client: no session, only what the link carries
    assert response.status_code == 200 and MARKER.encode() in body_of(response)


def test_a_requester_reads_once_granted_and_no_longer_once_revoked(world):
    set_state(world["version"], "restricted")
    client, _ = client_for(world, "requester")
    url = routes(world)["file"]
    assert client.get(url).status_code == 403

    grant = AccessGrant.objects.create(record=world["version"].record, user=world["requester"],
                                       granted_by=world["owner"])
    assert client.get(url).status_code == 200

    AccessGrant.objects.filter(pk=grant.pk).update(revoked_at=timezone.now())
    assert client.get(url).status_code == 403


def failed_run(version: Version, *, after: ExecutionRun) -> ExecutionRun:
    """A later run that ended with the notebook's own exception, whose message quotes what the data held."""
    return ExecutionRun.objects.create(
        version=version, runner="local", notebook_path=NOTEBOOK_PATH, status=ExecutionRun.Status.FINISHED,
        verdict=Verdict.EXECUTION_FAILED, message=f"Cell 1 raised ValueError: {MARKER}",
        finished_at=after.finished_at + datetime.timedelta(days=1), logs="",
        report={"execution": {"outcome": "execution_failed", "message": f"ValueError: {MARKER}",
                              "failed_cell_index": 1}})


@pytest.mark.parametrize("state", ["embargoed", "restricted"])
def test_a_failed_runs_message_quoting_the_notebook_stays_with_those_who_may_read_it(world, state):
    set_state(world["version"], state)
    run = failed_run(world["version"], after=world["run"])
    pages = {"landing": routes(world)["landing"], "report": f"/runs/{run.run_id}/",
             "api_run": f"/api/runs/{run.run_id}"}
    owner, _ = client_for(world, "owner")

    for name, url in pages.items():
        refused, allowed = Client().get(url), owner.get(url)
        assert refused.status_code == allowed.status_code == 200, name
        assert MARKER.encode() not in refused.content, f"{name}: the exception's text reached a stranger"
        assert MARKER.encode() in allowed.content, f"{name}: the owner no longer sees why the run failed"
    assert Client().get(pages["api_run"]).json()["verdict"] == "execution_failed"


def test_a_comparisons_message_is_shown_to_everyone(world):
    set_state(world["version"], "restricted")

    html = Client().get(routes(world)["report"]).content.decode()

    assert "Outputs differ within what was allowed." in html


@pytest.mark.parametrize("route", ["landing", "report", "api_run", "api_version", "api_executed_notebook"])
def test_pages_that_show_the_privileged_more_of_closed_files_are_never_publicly_cached(world, route):
    set_state(world["version"], "restricted")
    owner, _ = client_for(world, "owner")

    response = owner.get(routes(world)[route])

    assert response.status_code == 200
    assert "private" in response.get("Cache-Control", ""), response.get("Cache-Control")


@pytest.mark.parametrize("state", ["open", "restricted"])
def test_the_review_of_a_new_version_shows_the_earlier_closed_notebook_only_to_its_readers(world, state):
    from moderation.diff import cell_diff_prepare
    from repository.services.files import draft_file_delete
    from repository.services.new_versions import version_new_draft

    set_state(world["version"], state)
    other = Community.objects.create(slug="chemistry", name="Chemistry")
    other_moderator = UserFactory(username="chemistry_moderator")
    other.moderators.add(other_moderator)
    draft = version_new_draft(record=world["version"].record, actor=world["owner"])
    draft_file_delete(version=draft, actor=world["owner"], path=NOTEBOOK_PATH)
    upload(draft, world["owner"], NOTEBOOK_PATH, secret_notebook().replace(f"Results {MARKER}".encode(), b"Results"))
    review = review_submit(version=draft, actor=world["owner"], community=other)
    cell_diff_prepare(version_pk=draft.pk)  # what the worker does once the submission commits
    url = f"/requests/{review.pk}/"
    clients = {name: Client() for name in ("owner", "other_moderator")}
    clients["owner"].force_login(world["owner"])
    clients["other_moderator"].force_login(other_moderator)

    pages = {name: client.get(url) for name, client in clients.items()}
    polls = {name: client.get(f"{url}diff/cells/") for name, client in clients.items()}  # the page's own poll

    assert pages["owner"].status_code == pages["other_moderator"].status_code == 200
    assert MARKER in pages["owner"].content.decode()  # the cells' diff quotes version 1's heading
    assert (MARKER in pages["other_moderator"].content.decode()) == (state == "open")
    assert MARKER in polls["owner"].content.decode()
    assert (MARKER in polls["other_moderator"].content.decode()) == (state == "open")


def test_tricks_around_a_restricted_file_open_nothing(world, people):
    """HEAD, Range, path spellings, a share link or a grant of another record, expired grants and links."""
    set_state(world["version"], "restricted")
    url = routes(world)["file"]
    base = url.removesuffix(DATA_PATH)
    other = published_version(people["stranger"], people["admin"], title="The stranger's own record")
    Version.objects.filter(pk=other.pk).update(access_files=FileAccess.RESTRICTED)
    other_token = "a-share-token-of-another-record-0123456789"
    ShareLink.objects.create(record=other.record, created_by=people["stranger"],
                             token_sha256=hashlib.sha256(other_token.encode()).hexdigest())
    AccessGrant.objects.create(record=other.record, user=world["requester"], granted_by=people["stranger"])
    yesterday = timezone.now().date() - datetime.timedelta(days=1)
    AccessGrant.objects.filter(user=world["grantee"]).update(until=yesterday)
    ShareLink.objects.filter(pk=world["link"].pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    requester, _ = client_for(world, "requester")
    grantee, _ = client_for(world, "grantee")
    expired_session, _ = client_for(world, "share_session")

    answers = {
        "HEAD": Client().head(url),
        "Range": Client().get(url, HTTP_RANGE="bytes=0-3"),
        "dot-dot": Client().get(f"{base}x/../{DATA_PATH}"),
        "encoded slash": Client().get(base + DATA_PATH.replace("/", "%2F")),
        "upper case": Client().get(base + DATA_PATH.upper()),
        "another record's link": Client().get(f"{url}?share={other_token}"),
        "a grant on another record": requester.get(url),
        "an expired grant": grantee.get(url),
        "an expired link": Client().get(f"{url}?share={SHARE_TOKEN}"),
        "an expired link in the session": expired_session.get(url),
    }

    for trick, response in answers.items():
        assert response.status_code in (403, 404), f"{trick}: {response.status_code}"
        assert MARKER.encode() not in body_of(response), trick
        assert "Location" not in response, trick
