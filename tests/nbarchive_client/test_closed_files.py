"""`nbarchive download` of a version whose files are closed to the caller: the API lists them without download
links (issue 17), and the client says so in one line instead of failing on a missing key."""

import pytest

from nbarchive_client.api import ClientError
from nbarchive_client.cli import _version_files


class _Answer:
    status_code = 200

    def __init__(self, body: dict):
        self._body = body

    def json(self) -> dict:
        return self._body


class _Api:
    def __init__(self, body: dict):
        self.body = body

    def request(self, method, path, **kwargs):
        return _Answer(self.body)


def version_body(links: dict) -> dict:
    return {"version": 2, "links": {"html": "https://archive.example/records/abc-123/versions/2/"},
            "files": [{"path": "data.csv", "size": 3, "checksum": "sha256:" + "a" * 64, "links": links}]}


def test_closed_files_are_refused_with_where_to_look():
    with pytest.raises(ClientError) as refused:
        _version_files(_Api(version_body({})), "abc-123", 2)

    assert str(refused.value) == ("the files of record 'abc-123' version 2 are not open to you (embargoed or "
                                  "restricted); see https://archive.example/records/abc-123/versions/2/")


def test_open_files_are_listed_for_download():
    label, files = _version_files(_Api(version_body({"download": "https://archive.example/f"})), "abc-123", 2)

    assert label == "version 2" and files[0]["url"] == "https://archive.example/f"
