"""The traffic of tests/bench/load.py: readers and depositors of the archive, as locust users.

Run by load.py, which writes the JSON file named by LOAD_CONFIG (seeded record ids, downloadable files, OAI-PMH
identifiers, the depositor's token, the upload pool's address). Every answer is checked for what a client needs
from it (status, and a word of the body), so that a fast wrong answer counts as a failure, not as a good figure.
"""

import json
import os
import random
import secrets
import xml.etree.ElementTree as ElementTree

from locust import HttpUser, between, task

CONFIG = json.loads(open(os.environ["LOAD_CONFIG"]).read())  # noqa: SIM115, PTH123 - read once at import
OAI = "{http://www.openarchives.org/OAI/2.0/}"
# Words of the seeded titles and keywords (moderation/management/commands/seed_records.py), and one nobody wrote.
SEARCH_WORDS = ("perovskites", "copper", "protein", "ocean", "galaxy", "soil", "graphene", "calibration", "DFT",
                "climate", "astronomy", "zeolite")
WAIT = [float(x) for x in os.environ.get("LOAD_WAIT", "0.5,1.5").split(",")]


class Visitor(HttpUser):
    """One person or program using the site; the task weights are the mix of the traffic."""

    wait_time = between(*WAIT)

    def on_start(self):
        self.client.trust_env = False  # loopback only
        self.oai_token = None

    @task(10)
    def landing_page(self):
        record_id = random.choice(CONFIG["records"])
        with self.client.get(f"/records/{record_id}/", name="landing page", catch_response=True) as response:
            _expect(response, 200, record_id)

    @task(6)
    def api_record(self):
        record_id = random.choice(CONFIG["records"])
        with self.client.get(f"/api/records/{record_id}", name="api record", catch_response=True) as response:
            _expect(response, 200, f'"{record_id}"')

    @task(4)
    def search(self):
        with self.client.get("/api/records", params={"q": random.choice(SEARCH_WORDS)}, name="api search",
                             catch_response=True) as response:
            _expect(response, 200, '"hits"')

    @task(2)
    def oai_list_records(self):
        """A harvester: the first ListRecords page, then the pages its resumptionTokens lead to."""
        params = {"verb": "ListRecords"}
        if self.oai_token:
            params["resumptionToken"] = self.oai_token
        else:
            params["metadataPrefix"] = "oai_dc"
        name = "oai ListRecords (resumed)" if self.oai_token else "oai ListRecords (first)"
        with self.client.get("/oai", params=params, name=name, catch_response=True) as response:
            root = _oai_root(response)
            if root is not None:
                token = root.find(f"{OAI}ListRecords/{OAI}resumptionToken")
                self.oai_token = token.text if token is not None and token.text else None

    @task(2)
    def oai_get_record(self):
        params = {"verb": "GetRecord", "metadataPrefix": "oai_datacite",
                  "identifier": random.choice(CONFIG["oai_identifiers"])}
        with self.client.get("/oai", params=params, name="oai GetRecord", catch_response=True) as response:
            _oai_root(response)

    @task(2)
    def download(self):
        """A published file: the app redirects to a presigned URL of the object store, which serves the bytes."""
        file = random.choice(CONFIG["downloads"])
        with self.client.get(file["url"], name="download", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(_what_went_wrong(response))
            elif len(response.content) != file["size"]:
                response.failure(f"{len(response.content)} bytes of {file['size']}")

    @task(1)
    def deposit(self):
        """A depositor: a draft through the API, a small file through the upload pool, then the draft discarded
        (submitting would start a verification in a container image, which is not what this measures)."""
        headers = {"Authorization": f"Bearer {CONFIG['token']}"}
        metadata = {"title": f"Load test deposit {secrets.token_hex(4)}", "description": "tests/bench/load.py",
                    "resource_type": "ComputationalNotebook", "license": "CC-BY-4.0", "keywords": ["load test"],
                    "creators": [{"name": "Doe, Jane", "given_name": "Jane", "family_name": "Doe"}]}
        with self.client.post("/api/records", json=metadata, headers=headers, name="deposit: create draft",
                              catch_response=True) as response:
            if response.status_code != 201:
                response.failure(_what_went_wrong(response))
                return
            record_id = response.json()["id"]
        with self.client.put(f"{CONFIG['uploads_url']}/api/records/{record_id}/draft/files/data.csv",
                             data=b"x,y\n" + b"1,2\n" * 256, name="deposit: upload file",
                             headers={**headers, "Content-Type": "application/octet-stream"},
                             catch_response=True) as response:
            _expect(response, 201, "sha256")
        with self.client.delete(f"/api/records/{record_id}/draft", headers=headers, name="deposit: discard",
                                catch_response=True) as response:
            _expect(response, 204, "")


def _expect(response, status: int, text: str) -> None:
    if response.status_code != status:
        response.failure(_what_went_wrong(response))
    elif text not in response.text:
        response.failure(f"{text!r} not in the answer")


def _what_went_wrong(response) -> str:
    """The status and the start of the body; status 0 is no answer at all, and then the exception says why."""
    if response.status_code == 0:
        return f"no answer: {response.error!r}"[:300]
    return f"{response.status_code}: {response.text[:200]}"


def _oai_root(response):
    if response.status_code != 200:
        response.failure(_what_went_wrong(response))
        return None
    try:
        root = ElementTree.fromstring(response.content)
    except ElementTree.ParseError as exc:
        response.failure(f"not XML: {exc}")
        return None
    error = root.find(f"{OAI}error")
    if error is not None:
        response.failure(f"OAI-PMH error {error.get('code')}: {error.text}")
        return None
    return root
