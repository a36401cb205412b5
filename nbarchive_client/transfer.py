"""Uploading one file with the server's resumable protocol (repository/api/uploads.py), and resuming it.

1. The file is read once to hash it (hashing.py): the SHA-256 the server will check, and the SHA-256 of every
   part, which the object store checks as each part arrives (the part URLs are signed for them).
2. The upload begins (path, size, sha256, part size); the state is kept in the cache folder, keyed by server,
   record and path, with the file's size and modification time.
3. Parts the store does not hold yet are sent, JOBS at once in parts of PART_SIZE (boto3's defaults), to the
   URLs the server signs (S3: presigned URLs, straight to the object store; a local server: its own part URL),
   then the upload is completed and the server's check awaited.

Run again after an interruption (a dropped connection, a closed laptop, a killed process), it lists the parts the
store holds and sends only the others. A file that changed since its upload began is refused: its parts would
not fit together.
"""

import hashlib
import json
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm

from nbarchive_client.api import Api, ClientError
from nbarchive_client.hashing import b64_sha256, hash_file, read_exactly

MIB = 1024 * 1024
PART_SIZE = 8 * MIB  # boto3's TransferConfig default (multipart_chunksize)
JOBS = 10  # parts sent at once: boto3's TransferConfig default (max_concurrency)
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
    def __init__(self, api: Api, record: str, local: Path, remote_path: str, *, jobs: int = JOBS, restart: bool = False,
                 wait_seconds: float = 600, quiet: bool = False):
        self.api, self.record, self.local, self.remote = api, record, local, remote_path
        self.jobs, self.restart, self.wait_seconds, self.quiet = jobs, restart, wait_seconds, quiet
        self.state_store = ResumeState(api, record, remote_path)
        self.sent_bytes = 0  # bytes of parts this run sent (for the benchmark's account of what a resume re-sends)
        self.timings: dict[str, float] = {}  # seconds since run() began at which each phase ended (benchmark)

    def run(self) -> dict:
        return self.finish(self.send())

    def send(self) -> dict:
        """Hash the file, begin the upload (or resume it), send the parts the store lacks and complete it; return
        the upload, being checked by the server now (or ready already). `finish` waits for the check."""
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
        self._state = state
        return upload

    def finish(self, upload: dict) -> dict:
        """Wait for the server's check of what `send` sent; return the upload, ready (ClientError if it failed)."""
        upload = self._await_check(self._state, upload)
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
        sender = _PartSender(self, state, signed)
        pending: set = set()
        with self._bar(size, self.remote, initial=done) as bar, open(self.local, "rb", buffering=0) as handle, \
                ThreadPoolExecutor(max_workers=self.jobs) as pool:
            try:
                for start in range(0, len(missing), SIGN_BATCH):
                    # The next batch is signed and queued while the parts before it are still being sent, so
                    # no thread waits for a signature; not earlier, so URLs do not age in the queue.
                    while len(pending) > 2 * self.jobs:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in finished:
                            future.result()
                    batch = missing[start:start + SIGN_BATCH]
                    unsigned = [n for n in batch if n not in signed]
                    if unsigned:
                        sender.sign(unsigned)
                    pending |= {pool.submit(sender.send, number, handle.fileno(), bar) for number in batch}
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    future.result()
            except BaseException:
                for future in pending:  # an error or ^C: the parts not begun stay unsent
                    future.cancel()
                raise
            finally:
                sender.close()

    def _sign(self, state: dict, numbers: list[int]) -> dict[int, dict]:
        payload = {"parts": [{"number": n, "sha256": state["parts"][n - 1]} for n in numbers]}
        targets = self.api.post(f"{self._upload_path(state)}/parts", payload, what=f"signing parts of {self.remote}")
        return {target["number"]: target for target in targets}

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


class _PartSender:
    """Sends parts from several threads. Each thread reads its parts into one buffer of its own, sent as it is
    (a memoryview: no copy of the bytes), over an HTTP session of its own whose connection stays open from part
    to part."""

    def __init__(self, upload: FileUpload, state: dict, signed: dict):
        self.upload, self.state, self.signed = upload, state, signed
        self.lock, self.sign_lock = threading.Lock(), threading.Lock()
        self.local = threading.local()
        self.sessions: list[requests.Session] = []

    def sign(self, numbers: list[int]) -> None:
        with self.sign_lock:  # one API request at a time on the client's session
            targets = self.upload._sign(self.state, numbers)
        with self.lock:
            self.signed.update(targets)

    def _thread_buffer_and_session(self) -> tuple[memoryview, requests.Session]:
        if not hasattr(self.local, "session"):
            self.local.buffer = memoryview(bytearray(self.state["part_size"]))
            self.local.session = requests.Session()
            self.local.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=1))
            self.local.session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=1))
            with self.lock:
                self.sessions.append(self.local.session)
        return self.local.buffer, self.local.session

    def close(self) -> None:
        for session in self.sessions:
            session.close()

    def send(self, number: int, fd: int, bar) -> None:
        upload, state = self.upload, self.state
        part_size, size = state["part_size"], state["size"]
        offset = (number - 1) * part_size
        length = min(part_size, size - offset)
        buffer, session = self._thread_buffer_and_session()
        data = buffer[:length]
        if read_exactly(fd, data, offset) != length:
            raise ClientError(f"{upload.local} is shorter than when its upload to {upload.remote} began; run again "
                              f"with --restart to start over")
        # Resuming (perhaps days later): the size and time matched, but check the bytes against the signed SHA-256
        # here rather than have the store refuse them.
        if upload.resumed and b64_sha256(data) != state["parts"][number - 1]:
            raise ClientError(f"{upload.local} changed since its upload to {upload.remote} began (part {number} "
                              f"differs); run again with --restart to start over")
        for attempt in range(1, ATTEMPTS + 1):
            target = self.signed[number]
            try:
                response = session.request(target.get("method", "PUT"), target["url"], data=data,
                                           headers=target["headers"], timeout=(10, 300))
            except requests.RequestException as exc:
                if attempt == ATTEMPTS:
                    raise ClientError(f"{upload.remote}: part {number} could not be sent: {exc}") from None
                time.sleep(2 ** attempt)
                self.sign([number])  # the wait may have outlived the URL: never retry with a stale one
                continue
            with self.lock:
                upload.sent_bytes += length
            if response.ok:
                bar.update(length)
                return
            # A refusal may come before the store has read the whole part, which leaves the connection unusable
            # for the next request: the retry opens a new one.
            session.close()
            if response.status_code in (400, 403) and attempt < ATTEMPTS and "xpired" in response.text:
                self.sign([number])  # the URL expired while the part waited its turn: sign it again
                continue
            if response.status_code >= 500 and attempt < ATTEMPTS:
                time.sleep(2 ** attempt)
                continue
            raise ClientError(f"{upload.remote}: the store refused part {number}: {_store_error(response)}")


def _store_error(response: requests.Response) -> str:
    text = response.text
    if "<Code>" in text:  # S3's XML error
        found = [text.split(f"<{tag}>", 1)[1].split("<", 1)[0] for tag in ("Code", "Message") if f"<{tag}>" in text]
        return f"{': '.join(found)} (HTTP {response.status_code})"
    try:
        return f"{response.json().get('detail', '')} (HTTP {response.status_code})"
    except ValueError:
        return f"HTTP {response.status_code}"
