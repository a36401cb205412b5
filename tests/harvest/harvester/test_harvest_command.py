"""`python manage.py harvest`: what the person running it sees, and one-line errors for everything that goes wrong."""

import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from harvest.models import HarvestedRecord
from tests.fakes.oai_pmh import FakeOaiPmh, FakeRecord
from tests.harvest.harvester.conftest import minutes, sample_records

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), Terminal()
    call_command("harvest", *args, "--retries", "0", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def error_of(*args: str) -> str:
    with pytest.raises(CommandError) as raised:
        run(*args)
    message = str(raised.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_harvest_prints_a_progress_bar_and_a_summary(oai_server):
    out, err = run(oai_server.url)

    assert out == "Harvested Fake OAI-PMH repository: 4 new, 0 updated, 1 deleted, 0 unchanged, 0 failed.\n"
    # The total comes from completeListSize; the bar ends full.
    assert "5/5" in err and "100%" in err
    assert HarvestedRecord.objects.get(doi="10.5281/zenodo.111").creators == ["Doe, Jane", "Roe, Richard"]


def test_the_second_run_is_incremental_and_says_so(oai_server):
    run(oai_server.url)
    oai_server.delete("oai:fake.example:3", at=minutes(9))

    out, _ = run(oai_server.url)

    assert out == ("Harvested Fake OAI-PMH repository since 2024-03-01T12:04:00Z: "
                   "0 new, 0 updated, 1 deleted, 1 unchanged, 0 failed.\n")
    assert HarvestedRecord.objects.get(oai_identifier="oai:fake.example:3").deleted
    assert HarvestedRecord.objects.count() == 5


def test_set_and_from(oai_server):
    out, _ = run(oai_server.url, "--set", "data", "--from", "2024-03-01T12:01:00Z")

    assert out == ("Harvested Fake OAI-PMH repository, set data since 2024-03-01T12:01:00Z: "
                   "2 new, 0 updated, 1 deleted, 0 unchanged, 0 failed.\n")
    assert oai_server.list_requests()[0] == {"verb": "ListRecords", "metadataPrefix": "oai_dc", "set": "data",
                                             "from": "2024-03-01T12:01:00Z"}


def test_no_records_match_is_nothing_new_and_no_error(oai_server):
    out, _ = run(oai_server.url, "--from", "2030-01-01")

    assert out == "Nothing new from Fake OAI-PMH repository since 2030-01-01.\n"


def test_unreadable_records_are_listed_and_fail_the_run():
    records = sample_records()[:1] + [FakeRecord("oai:fake.example:x", minutes(1), oai_dc_xml="<other/>")]
    out, err = io.StringIO(), io.StringIO()
    with (FakeOaiPmh(records) as server,
          pytest.raises(CommandError, match=r"^1 record\(s\) could not be read; the others were imported\.$")):
        call_command("harvest", server.url, stdout=out, stderr=err)

    assert "Could not read oai:fake.example:x: expected oai_dc:dc, found <other>" in err.getvalue()
    assert "1 new, 0 updated, 0 deleted, 0 unchanged, 1 failed." in out.getvalue()


@pytest.mark.parametrize(("code", "message"), [
    ("badArgument", "The request includes illegal arguments"),
    ("cannotDisseminateFormat", "oai_datacite is not supported"),
])
def test_protocol_errors_are_one_line_with_the_server_s_message(oai_server, code, message):
    oai_server.oai_error(code, message, verb="ListRecords")

    assert error_of(oai_server.url, "--prefix", "oai_datacite") == (
        f"{oai_server.url} answered the OAI-PMH error {code}: {message}")


def test_not_an_oai_pmh_endpoint(oai_server):
    oai_server.http_answer(200, b"<!doctype html><html><body><p>Welcome</body></html>")

    assert error_of(oai_server.url).startswith(f"{oai_server.url} is not an OAI-PMH endpoint")


def test_a_wrong_path_on_the_right_host(oai_server):
    url = oai_server.url.replace("/oai", "/wrong")
    assert error_of(url) == f"{url} is not an OAI-PMH endpoint: HTTP 404"


def test_an_unreachable_host():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/oai"

    assert error_of(url).startswith(f"{url} could not be reached")


@pytest.mark.parametrize(("args", "error"), [
    (["not a url"], "Not an http(s) URL: 'not a url'"),
    (["ftp://example.org/oai"], "Not an http(s) URL: 'ftp://example.org/oai'"),
    (["https://example.org/oai", "--prefix", "marc21"],
     "Unknown metadata format 'marc21'; use one of oai_dc, oai_datacite"),
    (["https://example.org/oai", "--from", "yesterday"],
     "--from 'yesterday' is not a date: use YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ (UTC)."),
    (["https://example.org/oai", "--from", "2024-13-01"],
     "--from '2024-13-01' is not a date: use YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ (UTC)."),
])
def test_bad_input(args, error):
    assert error_of(*args) == error


def test_from_the_shell_an_error_is_one_line_and_exit_status_1():
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "manage.py", "harvest", "https://example.org/oai", "--from", "soon"],
                            cwd=root, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 1
    assert result.stderr.strip() == ("CommandError: --from 'soon' is not a date: use YYYY-MM-DD or "
                                     "YYYY-MM-DDThh:mm:ssZ (UTC).")
