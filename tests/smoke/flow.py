"""The smoke test's steps over HTTP, as a submitter, a moderator and an anonymous reader see the site. Each step
raises SmokeFailure naming the process whose log explains a failure, and returns what later steps need."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

import requests

from repository import demo
from tests.smoke.supervisor import SmokeFailure

TIMEOUT = 30  # seconds per request
OAI = "{http://www.openarchives.org/OAI/2.0/}"


@dataclass
class Deposit:
    token: str  # a word only this run's record has: what the search looks for
    record_id: str = ""
    run_id: str = ""
    doi: str = ""
    landing_url: str = ""
    timings: dict[str, float] = field(default_factory=dict)


class Site:
    """The two pools as a proxy in front shows them: uploads of file bytes go to the upload pool (deploy/nginx.conf
    routes `/api/records/<id>/draft/files/...` and `/api/uploads/` there), everything else to the web pool."""

    def __init__(self, web: str, uploads: str, tokens: dict[str, str]):
        self.web, self.uploads = web, uploads
        self.sessions = {user: _session(token) for user, token in tokens.items()}
        self.anonymous = _session(None)

    def call(self, method: str, path: str, *, user: str | None = None, expect: int | tuple[int, ...] = 200,
             base: str | None = None, log: str = "web", **options) -> requests.Response:
        session = self.sessions[user] if user else self.anonymous
        url = (base or self.web) + path
        try:
            response = session.request(method, url, timeout=TIMEOUT, **options)
        except requests.RequestException as exc:
            raise SmokeFailure(f"{method} {path}: {exc}", log=log) from exc
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise SmokeFailure(f"{method} {path} answered {response.status_code}, not {expected}: "
                               f"{response.text[:300]}", log=log)
        return response


def _session(token: str | None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy from the environment
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def deposit(site: Site, *, submitter: str, image_ref: str, run: Deposit) -> None:
    """A draft with its metadata (REST API), then the notebook and its data file (upload pool)."""
    metadata = {
        "title": f"Thermal expansion of a copper rod (smoke {run.token})",
        "description": "Deposited by `make smoke`: the production topology driven over HTTP.",
        "resource_type": "ComputationalNotebook",
        "license": "CC-BY-4.0",
        "keywords": ["smoke test", run.token],
        "creators": [{"name": "Doe, Jane", "given_name": "Jane", "family_name": "Doe"}],
        "container_image": image_ref,
    }
    created = site.call("POST", "/api/records", user=submitter, json=metadata, expect=201).json()
    run.record_id = created["id"]
    for path, content in (("thermal.ipynb", demo.notebook()), (demo.DATA_PATH, demo.measurements_csv())):
        site.call("PUT", f"/api/records/{run.record_id}/draft/files/{path}", user=submitter, base=site.uploads,
                  log="uploads", data=content, headers={"Content-Type": "application/octet-stream"}, expect=201)
    files = site.call("GET", f"/api/records/{run.record_id}/draft", user=submitter).json()["files"]
    if sorted(f["path"] for f in files) != sorted(["thermal.ipynb", demo.DATA_PATH]):
        raise SmokeFailure(f"the draft lists {[f['path'] for f in files]} after both uploads", log="uploads")


def submit(site: Site, *, submitter: str, run: Deposit) -> None:
    site.call("POST", f"/api/records/{run.record_id}/draft/actions/submit", user=submitter, json={}, expect=202)


def verification(site: Site, *, submitter: str, run: Deposit, timeout: float) -> None:
    """Polls the draft's run until it ends: it must have reproduced the notebook in the pinned image."""
    deadline = time.monotonic() + timeout
    while True:
        runs = site.call("GET", f"/api/records/{run.record_id}/draft/runs", user=submitter).json()
        latest = runs[0] if runs else {}
        if latest.get("status") in ("finished", "error", "cancelled"):
            break
        if time.monotonic() > deadline:
            raise SmokeFailure(f"the run is still {latest.get('status')!r} after {timeout:.0f} s",
                               log="worker-verification")
        time.sleep(1)
    run.run_id = latest["id"]
    if (latest["status"], latest["verdict"], latest["runner"]) != ("finished", "reproduced", "image"):
        raise SmokeFailure(f"the run ended {latest['status']}/{latest['verdict']} with runner {latest['runner']}: "
                           f"{latest.get('message')}", log="worker-verification")
    environment = site.call("GET", f"/api/runs/{run.run_id}", user=submitter).json().get("environment") or {}
    pinned_digest = latest["container_image"].rsplit("@", 1)[1]
    ran = (environment.get("image"), environment.get("manifest_digest"), environment.get("sandbox"))
    if ran != (latest["container_image"], pinned_digest, "bubblewrap"):
        raise SmokeFailure(f"the run reports image, digest and sandbox {ran}, not the pinned "
                           f"{latest['container_image']} in bubblewrap", log="worker-verification")


def accept(site: Site, *, moderator: str, run: Deposit) -> None:
    queue = site.call("GET", "/api/requests", user=moderator).json()
    mine = [item for item in queue if item["record"] == run.record_id]
    if len(mine) != 1 or "accept" not in mine[0]["allowed_actions"]:
        raise SmokeFailure(f"the moderator's queue has {len(mine)} request(s) for record {run.record_id}")
    site.call("POST", f"/api/requests/{mine[0]['id']}/actions/accept", user=moderator,
              json={"comment": "Reproduced in its image: accepted by the smoke test."})


def doi_findable(site: Site, *, datacite_url: str, run: Deposit, timeout: float) -> None:
    """The version becomes published once the `dois` worker has registered its DOI; the DOI must then be
    findable at the registrar, anonymously, pointing at this site."""
    deadline = time.monotonic() + timeout
    record = {}
    while time.monotonic() < deadline:
        answer = site.call("GET", f"/api/records/{run.record_id}", expect=(200, 404))
        record = answer.json() if answer.status_code == 200 else {}
        if record.get("state") == "published" and record.get("doi"):
            break
        time.sleep(0.5)
    else:
        raise SmokeFailure(f"the version is {record.get('state', 'not public')!r} after {timeout:.0f} s",
                           log="worker-dois")
    run.doi = record["doi"]
    try:
        registered = requests.get(f"{datacite_url}/dois/{run.doi}", timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise SmokeFailure(f"the DataCite fake did not answer: {exc}", log="worker-dois") from exc
    if registered.status_code != 200:
        raise SmokeFailure(f"DOI {run.doi} is not findable at the registrar ({registered.status_code})",
                           log="worker-dois")
    attributes = registered.json()["data"]["attributes"]
    run.landing_url = attributes.get("url") or ""
    if attributes.get("state") != "findable" or not run.landing_url.startswith(site.web + "/"):
        raise SmokeFailure(f"DOI {run.doi} is {attributes.get('state')} with URL {run.landing_url!r}",
                           log="worker-dois")


def landing_page(site: Site, *, run: Deposit) -> None:
    """The page the DOI resolves to, and a stylesheet it links (the static files' manifest at work)."""
    path = run.landing_url.removeprefix(site.web)
    page = site.call("GET", path).text
    if run.doi not in page or run.token not in page:
        raise SmokeFailure(f"the landing page {path} does not show DOI {run.doi} and the title")
    stylesheets = re.findall(r'href="(/static/[^"]+\.css)"', page)
    if not stylesheets:
        raise SmokeFailure(f"the landing page {path} links no stylesheet under /static/")
    site.call("GET", stylesheets[0])


def oai_pmh(site: Site, *, run: Deposit) -> None:
    listed = _oai(site, verb="ListRecords", metadataPrefix="oai_dc")
    identifiers = [header.findtext(f"{OAI}identifier") for header in listed.iter(f"{OAI}header")
                   if f":{run.record_id}/" in (header.findtext(f"{OAI}identifier") or "")]
    if not identifiers:
        raise SmokeFailure(f"ListRecords has no item of record {run.record_id}")
    record = _oai(site, verb="GetRecord", identifier=identifiers[0], metadataPrefix="oai_datacite")
    if run.doi.lower() not in ElementTree.tostring(record, encoding="unicode").lower():
        raise SmokeFailure(f"GetRecord {identifiers[0]} (oai_datacite) does not carry DOI {run.doi}")


def _oai(site: Site, **arguments: str) -> ElementTree.Element:
    body = site.call("GET", "/oai", params=arguments).content
    root = ElementTree.fromstring(body)
    error = root.find(f"{OAI}error")
    if error is not None:
        raise SmokeFailure(f"OAI-PMH {arguments['verb']}: {error.get('code')}: {error.text}")
    return root


def search(site: Site, *, run: Deposit) -> None:
    hits = site.call("GET", "/api/records", params={"q": run.token}).json()["hits"]["hits"]
    if [hit["id"] for hit in hits] != [run.record_id]:
        raise SmokeFailure(f"searching for {run.token!r} finds {[hit['id'] for hit in hits]}, not {run.record_id}")


def health(site: Site) -> None:
    site.call("GET", "/health/live")
    ready = site.call("GET", "/health/ready", expect=(200, 503))
    if ready.status_code != 200:
        raise SmokeFailure(f"/health/ready is {ready.status_code}: {ready.text[:400]}")
    metrics = site.call("GET", "/metrics").text
    if "nbarchive_http_request_duration_seconds" not in metrics:
        raise SmokeFailure("/metrics has no request latencies")
