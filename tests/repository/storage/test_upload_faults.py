"""S3 failing in the middle of an upload: a clear 503, no row, and nothing left that the collector cannot remove.

The app talks to the loopback S3 server through a TCP proxy that, once a few MiB of the upload have passed, drops
every connection and refuses new ones: S3 gone mid-transfer, as a network partition or a crashed endpoint looks.
"""

import os
import socket
import threading
from datetime import timedelta

import pytest

from repository.models import Blob, VersionFile
from repository.services.blobs import blob_gc
from tests.repository.storage.helpers import small_parts

pytestmark = [pytest.mark.django_db, pytest.mark.s3]

MIB = 1024 * 1024


class CuttingProxy:
    """Forwards loopback TCP to `upstream` until `cut_after` bytes went upstream, then cuts every connection and
    refuses new ones."""

    def __init__(self, upstream: tuple[str, int], cut_after: int):
        self.upstream = upstream
        self.cut_after = cut_after
        self.sent = 0
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.cut.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source, target, upstream: bool):
        try:
            while data := source.recv(256 * 1024):
                if upstream:
                    with self._lock:
                        self.sent += len(data)
                        over = self.sent > self.cut_after
                    if over:
                        self.cut_now()
                        return
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut_now(self):
        self.cut.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass


def s3_through(settings, endpoint: str, bucket: str):
    settings.STORAGES = {**settings.STORAGES, "blobs": {
        "BACKEND": "repository.integrations.s3.S3Storage",
        "OPTIONS": {"bucket_name": bucket, "endpoint_url": endpoint, "region_name": "us-east-1",
                    "access_key": "testing", "secret_key": "testing", "transfer_config": small_parts()},
    }}


@pytest.mark.parametrize("cut_after_mib", [1, 7], ids=["in the first part", "after a part was stored"])
def test_s3_failing_mid_upload_is_a_clear_503_and_leaves_nothing_behind(api, s3_blob_storage, s3_endpoint, settings,
                                                                         cut_after_mib):
    client, bucket = s3_blob_storage
    host, port = s3_endpoint.removeprefix("http://").split(":")
    proxy = CuttingProxy((host, int(port)), cut_after=cut_after_mib * MIB)
    record_id = api.post("/api/records", {}, format="json").json()["id"]
    s3_through(settings, proxy.url, bucket)
    data = os.urandom(16 * MIB)  # four parts of 5 MiB

    response = api.put(f"/api/records/{record_id}/draft/files/data/big.bin", data,
                       content_type="application/octet-stream")

    assert proxy.cut.is_set()
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "storage_unavailable" and "nothing was saved" in problem["title"]
    assert (Blob.objects.count(), VersionFile.objects.count()) == (0, 0)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # no object, temporary or final
    draft = api.get(f"/api/records/{record_id}/draft/files").json()
    assert draft == []

    # Parts S3 had already stored belong to an unfinished multipart upload the app could not abort (S3 was gone);
    # once S3 is back, the garbage collector aborts it.
    s3_through(settings, s3_endpoint, bucket)
    report = blob_gc(grace=timedelta(0))
    assert not report.problems and report.uploads_aborted == 1
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
