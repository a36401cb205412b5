"""Uploading one file with the server's resumable protocol (repository/api/uploads.py), and resuming it.

1. The file is read once to hash it: the SHA-256 the server will check, and the SHA-256 of every part, which
   the object store checks as each part arrives (the part URLs are signed for them).
2. The upload begins (path, size, sha256, part size); the state is kept in the cache folder, keyed by server,
   record and path, with the file's size and modification time.
3. Parts the store does not hold yet are sent, several at once, to the URLs the server signs (S3: presigned
   URLs, straight to the object store; a local server: its own part URL), then the upload is completed and the
   server's check awaited.

Run again after an interruption (a dropped connection, a closed laptop, a killed process), it lists the parts the
store holds and sends only the others. A file that changed since its upload began is refused: its parts would
not fit together.
"""

import base64
import hashlib
import json
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from nbarchive_client.api import Api, ClientError

MIB = 1024 * 1024
PART_SIZE = 8 * MIB
MAX_PARTS = 10_000
SIGN_BATCH = 64
ATTEMPTS = 4


def cache_dir() -> Path:
    root = os.environ.get("NBARCHIVE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nbarchive-client")
    return Path(root) / "uploads"


def part_size_for(size: int) -> int:
    smallest = -(-size // MAX_PARTS)
    return max(PART_SIZE, -(-smallest // MIB) * MIB)


@dataclass
class Hashes:
    sha256: str
    parts: list[str]  # base64, as in x-amz-checksum-sha256


def hash_file(path: Path, part_size: int, progress: tqdm | None = None) -> Hashes:
    """The file's SHA-256 and its parts'; the two digests run in two threads (hashlib lets go of the GIL)."""
    whole, parts = hashlib.sha256(), []
    with open(path, "rb") as handle, ThreadPoolExecutor(max_workers=1) as pool:
        while chunk := handle.read(part_size):
            pending = pool.submit(whole.update, chunk)
            parts.append(_b64_sha256(chunk))
            pending.result()
            if progress is not None:
                progress.update(len(chunk))
    return Hashes(sha256=whole.hexdigest(), parts=parts)


class ResumeState:
    """What an interrupted upload needs to go on: the upload's id and the file's hashes, per server, record and
    remote path, with the size and modification time the file had."""

    def __init__(self, api: Api, record: str, remote_path: str):
        key = hashlib.sha256(f"{api.base}\n{record}\n{remote_path}".encode()).hexdigest()[:32]
        self.path = cache_dir() / f"{key}.json"

    def load(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(state))
        os.replace(partial, self.path)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


class FileUpload:
    def __init__(self, api: Api, record: str, local: Path, remote_path: str, *, jobs: int = 4, restart: bool = False,
                 wait_seconds: float = 600, quiet: bool = False):
        self.api, self.record, self.local, self.remote = api, record, local, remote_path
        self.jobs, self.restart, self.wait_seconds, self.quiet = jobs, restart, wait_seconds, quiet
        self.state_store = ResumeState(api, record, remote_path)
        self.sent_bytes = 0  # bytes of parts this run sent (for the benchmark's account of what a resume re-sends)
        self.timings: dict[str, float] = {}  # seconds since run() began at which each phase ended (benchmark)

    def run(self) -> dict:
        began = time.monotonic()
        self._mark = lambda phase: self.timings.__setitem__(phase, time.monotonic() - began)
        stat = self.local.stat()
        if stat.st_size == 0:
            raise ClientError(f"{self.local}: the file is empty")
        state = self.state_store.load()
        if state and (state["size"], state["mtime_ns"]) != (stat.st_size, stat.st_mtime_ns):
            if not self.restart:
                raise ClientError(f"{self.local} changed since its upload to {self.remote} began; run again with "
                                  f"--restart to discard the earlier upload and start over")
            self._discard(state)
            state = None
        upload = self._resumable(state) if state else None
        self.resumed = upload is not None
        if upload is None:
            state, upload = self._begin(stat)
        self._mark("began")
        if upload["state"] == "uploading":
            self._send_missing(state, upload)
            self._mark("parts_sent")
            upload = self.api.post(f"{self._upload_path(state)}/complete", what=f"completing {self.remote}")
            self._mark("completed")
        upload = self._await_check(state, upload)
        self._mark("checked")
        self.state_store.forget()
        return upload

    def _upload_path(self, state: dict) -> str:
        return f"records/{self.record}/draft/uploads/{state['upload_id']}"

    def _discard(self, state: dict) -> None:
        response = self.api.request("DELETE", self._upload_path(state), expect=(204, 404, 409))
        if response.status_code == 409:
            raise ClientError(f"{self.remote}: the earlier upload is being checked; wait and run again")
        self.state_store.forget()

    def _resumable(self, state: dict) -> dict | None:
        response = self.api.request("GET", self._upload_path(state), expect=(200, 404))
        if response.status_code == 404:  # expired, aborted, or its draft is gone: start over
            self.state_store.forget()
            return None
        upload = response.json()
        if upload["state"] == "failed":
            self.state_store.forget()
            raise ClientError(upload["message"] or f"{self.remote}: the upload failed")
        return upload

    def _begin(self, stat) -> tuple[dict, dict]:
        part_size = part_size_for(stat.st_size)
        with self._bar(stat.st_size, f"hashing {self.remote}") as bar:
            hashes = hash_file(self.local, part_size, bar)
        self._mark("hashed")
        if self.local.stat().st_mtime_ns != stat.st_mtime_ns:
            raise ClientError(f"{self.local} changed while it was being read")
        first = [{"number": n, "sha256": sha} for n, sha in enumerate(hashes.parts[:SIGN_BATCH], start=1)]
        upload = self.api.post(f"records/{self.record}/draft/uploads", {
            "path": self.remote, "size": stat.st_size, "sha256": hashes.sha256, "part_size": part_size,
            "parts": first}, what=f"{self.remote}")
        state = {"upload_id": upload["id"], "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                 "part_size": upload["part_size"], "sha256": hashes.sha256, "parts": hashes.parts,
                 "local": str(self.local)}
        self.state_store.save(state)
        self._signed = {target["number"]: target for target in upload.get("part_urls", [])}
        return state, upload

    def _send_missing(self, state: dict, upload: dict) -> None:
        part_size, size = state["part_size"], state["size"]
        held = {p["number"] for p in upload.get("parts_received", [])
                if p["size"] == min(part_size, size - (p["number"] - 1) * part_size)
                and p.get("sha256") in (None, state["parts"][p["number"] - 1])}
        missing = [n for n in range(1, len(state["parts"]) + 1) if n not in held]
        done = size - sum(min(part_size, size - (n - 1) * part_size) for n in missing)
        signed = getattr(self, "_signed", {})
        lock = threading.Lock()
        with self._bar(size, self.remote, initial=done) as bar, open(self.local, "rb") as handle, \
                ThreadPoolExecutor(max_workers=self.jobs) as pool:
            for start in range(0, len(missing), SIGN_BATCH):
                batch = missing[start:start + SIGN_BATCH]
                unsigned = [n for n in batch if n not in signed]
                if unsigned:
                    signed.update(self._sign(state, unsigned))
                futures = [pool.submit(self._send_part, state, signed, n, handle, bar, lock) for n in batch]
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for future in finished:
                    future.result()
                for future in futures:
                    future.result()

    def _sign(self, state: dict, numbers: list[int]) -> dict[int, dict]:
        payload = {"parts": [{"number": n, "sha256": state["parts"][n - 1]} for n in numbers]}
        targets = self.api.post(f"{self._upload_path(state)}/parts", payload, what=f"signing parts of {self.remote}")
        return {target["number"]: target for target in targets}

    def _send_part(self, state: dict, signed: dict, number: int, handle, bar, lock) -> None:
        part_size, size = state["part_size"], state["size"]
        offset = (number - 1) * part_size
        data = os.pread(handle.fileno(), min(part_size, size - offset), offset)
        # Resuming (perhaps days later): the size and time matched, but check the bytes against the signed SHA-256
        # here rather than have the store refuse them.
        if self.resumed and _b64_sha256(data) != state["parts"][number - 1]:
            raise ClientError(f"{self.local} changed since its upload to {self.remote} began (part {number} differs);"
                              f" run again with --restart to start over")
        for attempt in range(1, ATTEMPTS + 1):
            target = signed[number]
            try:
                response = requests.request(target.get("method", "PUT"), target["url"], data=data,
                                            headers=target["headers"], timeout=(10, 300))
            except requests.RequestException as exc:
                if attempt == ATTEMPTS:
                    raise ClientError(f"{self.remote}: part {number} could not be sent: {exc}") from None
                time.sleep(2 ** attempt)
                continue
            with lock:
                self.sent_bytes += len(data)
            if response.ok:
                bar.update(len(data))
                return
            if response.status_code in (400, 403) and attempt < ATTEMPTS and "xpired" in response.text:
                with lock:  # the URL expired while the part waited its turn: sign it again
                    signed.update(self._sign(state, [number]))
                continue
            if response.status_code >= 500 and attempt < ATTEMPTS:
                time.sleep(2 ** attempt)
                continue
            raise ClientError(f"{self.remote}: the store refused part {number}: {_store_error(response)}")

    def _await_check(self, state: dict, upload: dict) -> dict:
        deadline = time.monotonic() + self.wait_seconds
        while upload["state"] == "checking" and time.monotonic() < deadline:
            time.sleep(0.1)
            upload = self.api.get(self._upload_path(state), what=f"checking {self.remote}")
        if upload["state"] == "failed":
            self.state_store.forget()
            raise ClientError(upload["message"] or f"{self.remote}: the server's check failed")
        return upload

    def _bar(self, total: int, label: str, initial: int = 0):
        return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                    disable=self.quiet, leave=True, dynamic_ncols=True)


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _store_error(response: requests.Response) -> str:
    text = response.text
    if "<Code>" in text:  # S3's XML error
        found = [text.split(f"<{tag}>", 1)[1].split("<", 1)[0] for tag in ("Code", "Message") if f"<{tag}>" in text]
        return f"{': '.join(found)} (HTTP {response.status_code})"
    try:
        return f"{response.json().get('detail', '')} (HTTP {response.status_code})"
    except ValueError:
        return f"HTTP {response.status_code}"
