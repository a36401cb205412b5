"""Benchmark: a large file uploaded through the REST API to S3, against boto3 uploading the same file directly.

    .venv/bin/python tests/bench/upload.py                 # 2048 MiB, the size the issue asks about
    .venv/bin/python tests/bench/upload.py --size-mb 256   # a quick run

What it does, all on loopback and in a temporary directory that is removed at the end:

1. starts moto's S3 server (`python -m moto.server`) on a free port and creates a bucket;
2. writes a test file of random bytes, in chunks (never whole in memory), hashing it on the way;
3. migrates a fresh SQLite database under a temporary NBARCHIVE_VAR_DIR and creates a user and a token;
4. starts the app under gunicorn (one sync worker) with the "blobs" storage on the moto bucket;
5. creates a draft, PUTs the file to /api/records/<id>/draft/files/<path> streamed from disk with `requests`,
   checks the 201 and that the sha256 the server computed is the one computed locally;
6. uploads the same file with boto3 `upload_file` (default TransferConfig) to the same endpoint;
7. reads the peak memory (VmHWM) of the gunicorn worker and of each client process.

Each client (the API PUT and the boto3 baseline) runs in a subprocess of its own, so its peak memory and CPU time
are its own and not the bench's. The gunicorn worker's high-water mark is reset (/proc/<pid>/clear_refs) before
each upload, so "worker peak during upload" is that upload's; "worker peak overall" includes start-up. A
bench-only gunicorn config (post_fork) traces the worker's S3 calls, timing only, for the per-upload timeline.

The machine may be shared: before each upload the bench waits for the CPUs to be idle (--quiet-wait), counts the
CPU time spent meanwhile by anything other than the client, moto and the worker, and measures again
(--retries) when that was large; figures still disturbed are marked DISTURBED.

The app's multipart settings are changed only through the environment variables the settings read:
--chunk-mb sets S3_MULTIPART_CHUNK_SIZE and --concurrency sets S3_MULTIPART_CONCURRENCY for gunicorn.
--diagnose adds boto3 baselines that isolate the costs of the server path: upload_file with the app's
TransferConfig, and upload_fileobj of a non-seekable reader that hashes (sha256 + md5) like the app does.
--app-dir runs the app from another checkout (e.g. `git worktree add /tmp/nb-exp` with a change to try);
--worker-env passes extra variables to gunicorn only (e.g. MALLOC_MMAP_THRESHOLD_=131072); --pin-moto keeps
moto on a CPU of its own.

8. (unless --skip-cli, and first) the `nbarchive` client: a direct upload, parts PUT to presigned moto URLs, then
   the server's check in a Celery worker; boto3 right after it; then an upload SIGKILLed once moto holds half of
   it, and resumed. The client's time is reported against boto3's three ways: the transfer alone (start request
   to completed upload), the client's side (its hashing pass too) and end to end (the server's check too, until
   the file is ready). Both sides print what each UploadPart carried for the store to check (boto3: CRC32 by
   default since botocore 1.36, and over plain http a SigV4-signed SHA-256 of the body; the client: the part's
   SHA-256 in x-amz-checksum-sha256, to a presigned URL). --skip-api leaves out step 5.

Targets checked: API throughput >= 0.8 x boto3 upload_file throughput; gunicorn worker peak < 200 MiB; the client's
throughput >= 0.95 x boto3's, the app's peak < 150 MiB during it, bytes sent again after the kill < 5% of the file.
Sizes are in MiB (2**20 bytes); rates in MiB/s.
"""

import argparse
import hashlib
import io
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_DIR = REPO_ROOT  # the checkout whose code gunicorn and manage.py run; --app-dir changes it
MIB = 1024 * 1024
HOST = "127.0.0.1"
BUCKET = "nbarchive-bench"
ACCESS_KEY = "bench-access-key"
SECRET_KEY = "bench-secret-key"
REGION = "us-east-1"
RATIO_TARGET = 0.8
WORKER_MEMORY_TARGET_MIB = 200
CLI_RATIO_TARGET = 0.95
APP_MEMORY_TARGET_MIB = 150


# --- /proc helpers --------------------------------------------------------------------------------------


def proc_status_kib(pid: int, field: str) -> int | None:
    """A `VmXxx:  123 kB` line of /proc/<pid>/status, in KiB; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def proc_cpu_seconds(pid: int | str) -> float | None:
    """User + system CPU time of a process (all its threads) from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # After the ")" closing the command name, utime and stime are fields 12 and 13 (0-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_high_water_mark(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs). False when not permitted."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def child_pids(pid: int) -> list[int]:
    children = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                children.extend(int(child) for child in handle.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return children


def mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from the first line of /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:9]]  # guest time is inside user already
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def wait_until_quiet(limit: float, settle: int = 3) -> float:
    """Wait (at most `limit` s) until the machine has been nearly idle for `settle` seconds in a row.

    Returns the cores busy in the last second sampled (high when the limit ran out).
    """
    deadline = time.monotonic() + limit
    quiet_seconds = 0
    while True:
        busy, total = machine_cpu_ticks()
        time.sleep(1)
        busy2, total2 = machine_cpu_ticks()
        cores = (os.cpu_count() or 1) * (busy2 - busy) / max(1, total2 - total)
        quiet_seconds = quiet_seconds + 1 if cores < 0.25 else 0
        if quiet_seconds >= settle or time.monotonic() > deadline:
            return cores


class CpuSampler:
    """While an upload runs: how busy the whole machine is, and CPU time per thread of one process.

    Threads of s3transfer's executors end with each upload, so their /proc/<pid>/task entries are polled
    (every 0.1 s) and the last value seen is kept.
    """

    def __init__(self, pid: int | None):
        self.pid = pid
        self.threads: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _poll(self) -> None:
        if self.pid is None:
            return
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            seconds = proc_cpu_seconds(f"{self.pid}/task/{tid}")
            if seconds is not None:
                self.threads[int(tid)] = seconds

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._poll()

    def __enter__(self):
        self._poll()
        self._threads_before = dict(self.threads)
        self._busy, self._total = machine_cpu_ticks()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self._poll()
        busy, total = machine_cpu_ticks()
        cores = os.cpu_count() or 1
        self.machine_busy_cores = cores * (busy - self._busy) / max(1, total - self._total)
        self.machine_busy_seconds = (busy - self._busy) / os.sysconf("SC_CLK_TCK")
        self.thread_cpu = sorted(
            ((tid, seconds - self._threads_before.get(tid, 0.0)) for tid, seconds in self.threads.items()),
            key=lambda item: -item[1],
        )
        return False


# --- processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_bytes()[-limit:].decode(errors="replace")
    except OSError:
        return ""


def wait_for_port(port: int, process: subprocess.Popen, log: Path, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {HOST}:{port} within {timeout:.0f} s:\n{log_tail(log)}")
        time.sleep(0.1)


def stop(process: subprocess.Popen | None, what: str) -> None:
    """SIGTERM, then SIGKILL after 15 s; gunicorn's master takes its worker down with it."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        print(f"  {what} ignored SIGTERM for 15 s; killing it", file=sys.stderr)
        process.kill()
        process.wait(timeout=10)


# Runs a script or module the way `python manage.py` / `python -m gunicorn` would, after removing
# setuptools' editable-install finder from sys.meta_path: with `pip install -e .` in the venv, a module missing
# from --app-dir (a file not committed there) would otherwise be imported from the editable checkout instead.
ISOLATED_START = (
    "import runpy, sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
    "target, sys.argv = sys.argv[1], sys.argv[1:]\n"
    "if target == '-m':\n"
    "    sys.argv = sys.argv[1:]\n"
    "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
    "else:\n"
    "    runpy.run_path(target, run_name='__main__')\n"
)


# Runs the nbarchive client (argv[2:]) counting every byte it hands to a socket, written as a little-endian int64
# to the file argv[1] as it goes: the count survives a SIGKILL. wchar of /proc/<pid>/io would not do: send() on a
# socket does not go through vfs_write.
COUNTING_CLIENT = (
    "import os, socket, struct, sys\n"
    "counter = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
    "sent = 0\n"
    "original = socket.socket.sendall\n"
    "def sendall(self, data, *args):\n"
    "    global sent\n"
    "    view = memoryview(data).cast('B')\n"
    "    for start in range(0, len(view), 262144):\n"
    "        original(self, view[start:start + 262144], *args)\n"
    "        sent += len(view[start:start + 262144])\n"
    "        os.pwrite(counter, struct.pack('<q', sent), 0)\n"
    "socket.socket.sendall = sendall\n"
    "sys.argv = ['nbarchive', *sys.argv[2:]]\n"
    "from nbarchive_client.cli import main\n"
    "sys.exit(main())\n"
)


def app_python(*target: str) -> list[str]:
    """The command line start for `python <target>` running the app's code from APP_DIR."""
    if APP_DIR == REPO_ROOT:
        return [sys.executable, *target]
    return [sys.executable, "-c", ISOLATED_START, *target]


def run(cmd: list[str], *, env: dict, timeout: float, what: str) -> str:
    result = subprocess.run(cmd, cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout


# --- the test file --------------------------------------------------------------------------------------


def generate_file(path: Path, size: int, chunk: int = 8 * MIB) -> str:
    """Write `size` random bytes to `path`, `chunk` at a time; return their sha256."""
    digest = hashlib.sha256()
    remaining = size
    with open(path, "wb") as handle:
        while remaining:
            data = os.urandom(min(chunk, remaining))
            digest.update(data)
            handle.write(data)
            remaining -= len(data)
    return digest.hexdigest()


# --- S3 call tracing --------------------------------------------------------------------------------------


def trace_s3_calls(path: str) -> None:
    """Append one JSON line per botocore API call (operation, monotonic start and end) to `path`.

    Installed in the gunicorn worker by a bench-only gunicorn config (post_fork) and in the boto3 clients, so the
    report can say when the first UploadPart started, how long the parts took and how long moto's
    CompleteMultipartUpload took. time.monotonic() is CLOCK_MONOTONIC, comparable between processes.
    """
    import botocore.client

    original = botocore.client.BaseClient._make_api_call

    def traced(self, operation_name, api_params):
        started = time.monotonic()
        try:
            return original(self, operation_name, api_params)
        finally:
            line = json.dumps({"op": operation_name, "start": started, "end": time.monotonic()}) + "\n"
            with open(path, "a") as trace:
                trace.write(line)

    botocore.client.BaseClient._make_api_call = traced


GUNICORN_CONFIG = """
import importlib.util


def post_fork(server, worker):
    spec = importlib.util.spec_from_file_location("nbarchive_upload_bench", {script!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.trace_s3_calls({trace!r})
"""


def summarize_trace(path: Path, start: float, end: float) -> dict:
    """The S3 calls made between `start` and `end` (monotonic), as a timeline relative to `start`."""
    calls = []
    try:
        with open(path) as trace:
            calls = [json.loads(line) for line in trace if line.strip()]
    except FileNotFoundError:
        return {}
    calls = [call for call in calls if call["start"] >= start - 0.001 and call["end"] <= end + 0.001]
    parts = [call for call in calls if call["op"] == "UploadPart"]
    complete = [call for call in calls if call["op"] == "CompleteMultipartUpload"]
    summary = {"operations": len(calls), "parts": len(parts)}
    if parts:
        durations = sorted(call["end"] - call["start"] for call in parts)
        summary.update(
            first_part_start=min(call["start"] for call in parts) - start,
            last_part_end=max(call["end"] for call in parts) - start,
            part_seconds_median=durations[len(durations) // 2],
            part_seconds_max=durations[-1],
        )
    if complete:
        summary.update(complete_start=complete[-1]["start"] - start,
                       complete_seconds=complete[-1]["end"] - complete[-1]["start"])
    return summary


# --- clients, each run in a subprocess of its own (python upload.py --client ...) -----------------------


class NonSeekableHashingReader(io.RawIOBase):
    """What repository.hashing_reader.HashingReader does to the bytes (sha256 + md5, non-seekable), minus Django."""

    def __init__(self, stream):
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)

    def readable(self):
        return True

    def seekable(self):
        return False

    def read(self, size=-1):
        data = self._stream.read(size)
        self.sha256.update(data)
        self.md5.update(data)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class TimedBody:
    """The file as a request body (what `data=open(...)` gives), noting when the HTTP client read its last byte."""

    def __init__(self, handle, size: int):
        self._handle = handle
        self._size = size
        self._read = 0
        self.started = 0.0
        self.body_done: float | None = None

    def __len__(self):  # requests then sends Content-Length, never chunked
        return self._size

    def __iter__(self):  # marks the body as a stream for requests
        return iter(lambda: self.read(64 * 1024), b"")

    def read(self, size=-1):
        data = self._handle.read(size)
        self._read += len(data)
        if self._read >= self._size and self.body_done is None:
            self.body_done = time.monotonic() - self.started
        return data


def part_headers_seen(headers, *, presigned: bool) -> dict:
    """What an UploadPart request carried to let the store check the bytes: its checksum headers, and whether the
    SigV4 signature covers a SHA-256 of the body (over plain http botocore signs the payload: a SHA-256 of every
    part, besides the checksum)."""
    names = {str(name).lower(): value.decode() if isinstance(value, bytes) else str(value)
             for name, value in headers.items()}
    payload = names.get("x-amz-content-sha256")
    if presigned:
        payload = "UNSIGNED-PAYLOAD (presigned URL)"
    elif payload and len(payload) == 64:
        payload = "the part's SHA-256 (signed payload)"
    return {"checksums": sorted(name for name in names if name.startswith("x-amz-checksum-")),
            "payload": payload or "none", "sdk_algorithm": names.get("x-amz-sdk-checksum-algorithm")}


def describe_part_headers(seen: dict) -> str:
    return (f"{', '.join(seen['checksums']) or 'no checksum header'}"
            f"{' (x-amz-sdk-checksum-algorithm ' + str(seen['sdk_algorithm']) + ')' if seen['sdk_algorithm'] else ''};"
            f" x-amz-content-sha256: {seen['payload']}")


def client_main(spec: dict) -> dict:
    """Do one timed upload described by `spec`; return the timing, the outcome and this process's own usage."""
    size = os.path.getsize(spec["file"])
    if spec["kind"] == "api":
        import requests

        with open(spec["file"], "rb") as handle:
            body = TimedBody(handle, size)
            started = body.started = time.monotonic()
            response = requests.put(
                spec["url"],
                data=body,
                headers={
                    "Authorization": f"Bearer {spec['token']}",
                    "Content-Length": str(size),
                    "Content-Type": "application/octet-stream",
                },
                timeout=(10, spec["timeout"]),
            )
            elapsed = time.monotonic() - started
        try:
            payload = response.json()
        except ValueError:
            payload = {"raw": response.text[:2000]}
        # From the last byte handed to the socket to the response: the server's part-upload tail, the
        # CompleteMultipartUpload and the database work.
        outcome = {"status": response.status_code, "response": payload,
                   "server_tail": elapsed - body.body_done if body.body_done else None}
    elif spec["kind"] == "cli":
        # The nbarchive client as a researcher runs it, from the app's checkout (it needs no Django).
        sys.path.insert(0, str(spec["app_dir"]))
        os.environ["NBARCHIVE_CACHE_DIR"] = spec["cache"]
        import requests

        from nbarchive_client.api import Api
        from nbarchive_client.transfer import FileUpload

        part_headers = {}
        original_send = requests.Session.send

        def send(session, request, **kwargs):  # note what a part PUT carries (the first one seen)
            if request.method == "PUT" and not part_headers:
                part_headers.update(request.headers)
            return original_send(session, request, **kwargs)

        requests.Session.send = send
        jobs = {"jobs": spec["jobs"]} if spec.get("jobs") else {}  # else the client's own default
        upload = FileUpload(Api(spec["url"], spec["token"]), spec["record"], Path(spec["file"]), spec["path"],
                            quiet=True, **jobs)
        started = time.monotonic()
        answer = upload.run()
        elapsed = time.monotonic() - started
        outcome = {"state": answer["state"], "sha256": answer["sha256"], "timings": upload.timings,
                   "sent_bytes": upload.sent_bytes, "jobs": upload.jobs,
                   "part_headers": part_headers_seen(part_headers, presigned=True)}
    else:
        import boto3
        from boto3.s3.transfer import TransferConfig

        client = boto3.client(
            "s3", endpoint_url=spec["endpoint"], region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        )
        trace_s3_calls(spec["trace"])
        part_headers = {}

        def note_part_headers(request, **_):
            if not part_headers:
                part_headers.update(request.headers)

        client.meta.events.register("before-send.s3.UploadPart", note_part_headers)
        config = TransferConfig()
        for name, value in (spec.get("transfer_config") or {}).items():
            # max_in_memory_upload_chunks is not an argument of boto3's class; max_concurrency is the alias of
            # max_request_concurrency that keeps both names in step.
            setattr(config, "max_concurrency" if name == "max_request_concurrency" else name, value)
        outcome = {}
        started = time.monotonic()
        if spec["kind"] == "boto3-file":
            client.upload_file(spec["file"], BUCKET, spec["key"], Config=config)
        elif spec["kind"] == "boto3-stream":
            with open(spec["file"], "rb", buffering=0) as raw:
                reader = NonSeekableHashingReader(raw)
                client.upload_fileobj(reader, BUCKET, spec["key"], Config=config)
            outcome["sha256"] = reader.sha256.hexdigest()
        else:
            raise ValueError(spec["kind"])
        elapsed = time.monotonic() - started
        outcome["part_headers"] = part_headers_seen(part_headers, presigned=False)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "started": started,
        "elapsed": elapsed,
        "size": size,
        "client_peak_kib": proc_status_kib(os.getpid(), "VmHWM"),
        "client_cpu": usage.ru_utime + usage.ru_stime,
        **outcome,
    }


# --- the bench ------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.size = args.size_mb * MIB
        self.tmp = Path(tempfile.mkdtemp(prefix="nbarchive-bench-"))
        self.moto: subprocess.Popen | None = None
        self.gunicorn: subprocess.Popen | None = None
        self.celery: subprocess.Popen | None = None
        self.worker_pid: int | None = None
        self.results: list[dict] = []
        self.timeout = args.timeout or (300 + self.size / MIB)  # generous: >= 1 MiB/s plus 5 minutes

    # set-up

    def start_moto(self) -> None:
        port = free_port()
        self.endpoint = f"http://{HOST}:{port}"
        log = self.tmp / "moto.log"
        moto_tmp = self.tmp / "moto-tmp"  # moto spools object bodies to temporary files
        moto_tmp.mkdir()
        env = {**os.environ, "TMPDIR": str(moto_tmp)}
        with open(log, "wb") as out:
            self.moto = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.tmp,
            )
        if self.args.pin_moto:
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) < 2:
                raise RuntimeError("--pin-moto needs at least 2 CPUs")
            os.sched_setaffinity(self.moto.pid, {cpus[-1]})
            os.sched_setaffinity(0, set(cpus[:-1]))  # the bench, gunicorn and the clients inherit this
        wait_for_port(port, self.moto, log, "moto server")
        import boto3

        self.s3 = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        )
        self.s3.create_bucket(Bucket=BUCKET)

    def app_env(self, *, debug: bool, gunicorn: bool = False) -> dict:
        env = dict(os.environ)
        for name in list(env):  # nothing from the caller's deployment may leak in
            if name.startswith(("S3_", "BACKUP_S3_", "AWS_", "DATABASE_URL", "CELERY_", "NBARCHIVE_")):
                del env[name]
        env.update({
            "NBARCHIVE_VAR_DIR": str(self.tmp / "var"),
            "DATABASE_URL": f"sqlite:///{self.tmp / 'var' / 'bench.sqlite3'}",
            "S3_BUCKET": BUCKET,
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_REGION": REGION,
            "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "DJANGO_DEBUG": "1" if debug else "0",
            "PYTHONUNBUFFERED": "1",
        })
        if self.args.chunk_mb:
            env["S3_MULTIPART_CHUNK_SIZE"] = str(self.args.chunk_mb * MIB)
        if self.args.concurrency:
            env["S3_MULTIPART_CONCURRENCY"] = str(self.args.concurrency)
        for assignment in self.args.worker_env if gunicorn else []:
            name, _, value = assignment.partition("=")
            env[name] = value
        if not debug:
            # DEBUG off is production-like; the app's own check (repository/checks.py) would refuse the
            # development SECRET_KEY and SQLite, but gunicorn does not run system checks.
            env["SECRET_KEY"] = secrets.token_urlsafe(50)
        return env

    def set_up_app(self) -> None:
        # migrate and shell run system checks, which refuse DEBUG=0 with SQLite: run them with DEBUG on.
        env = self.app_env(debug=True)
        run([*app_python("manage.py"), "migrate", "--noinput"], env=env, timeout=300, what="manage.py migrate")
        code = (
            "from django.contrib.auth import get_user_model\n"
            "from repository.services.tokens import token_create\n"
            "user = get_user_model().objects.create_user(username='bench', email='bench@example.org',"
            " password=None)\n"
            "print('TOKEN=' + token_create(user=user, name='bench')[1])\n"
        )
        out = run([*app_python("manage.py"), "shell", "-c", code], env=env, timeout=120, what="token creation")
        self.token = next(line[6:] for line in out.splitlines() if line.startswith("TOKEN="))
        # The TransferConfig the app's blob storage really uses (django-storages' default when settings give none).
        code = (
            "import json\n"
            "from django.core.files.storage import storages\n"
            "config = storages['blobs'].transfer_config\n"
            "print('CONFIG=' + json.dumps({name: getattr(config, name) for name in ('multipart_threshold',"
            " 'multipart_chunksize', 'max_request_concurrency', 'max_in_memory_upload_chunks')}))\n"
        )
        out = run([*app_python("manage.py"), "shell", "-c", code], env=env, timeout=120, what="reading settings")
        self.app_config = json.loads(next(line[7:] for line in out.splitlines() if line.startswith("CONFIG=")))

    def start_gunicorn(self) -> None:
        port = free_port()
        self.base_url = f"http://{HOST}:{port}"
        log = self.tmp / "gunicorn.log"
        env = self.app_env(debug=self.args.django_debug, gunicorn=True)
        # A bench-only gunicorn config whose post_fork hook traces the worker's S3 calls (timing only).
        self.worker_trace = self.tmp / "worker-s3-calls.jsonl"
        config = self.tmp / "gunicorn_bench_conf.py"
        config.write_text(GUNICORN_CONFIG.format(script=str(Path(__file__).resolve()), trace=str(self.worker_trace)))
        with open(log, "wb") as out:
            self.gunicorn = subprocess.Popen(
                [*app_python("-m", "gunicorn"), "repository.wsgi:application", "-b", f"{HOST}:{port}",
                 "-w", "1", "--timeout", "600", "--access-logfile", "-", "-c", str(config)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=APP_DIR,
            )
        wait_for_port(port, self.gunicorn, log, "gunicorn")
        deadline = time.monotonic() + 30
        while True:
            workers = child_pids(self.gunicorn.pid)
            if len(workers) == 1:
                self.worker_pid = workers[0]
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn has {len(workers)} workers, expected 1:\n{log_tail(log)}")
            time.sleep(0.1)

    def create_draft(self) -> str:
        import requests

        response = requests.post(f"{self.base_url}/api/records", json={}, timeout=60,
                                 headers={"Authorization": f"Bearer {self.token}"})
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/records answered {response.status_code}: {response.text[:2000]}\n"
                               f"{log_tail(self.tmp / 'gunicorn.log')}")
        return response.json()["id"]

    # measurements

    def client(self, spec: dict) -> dict:
        spec = {**spec, "file": str(self.file), "timeout": self.timeout}
        result = subprocess.run(
            [sys.executable, __file__, "--client", json.dumps(spec)],
            capture_output=True, text=True, timeout=self.timeout + 60, cwd=self.tmp, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"client {spec['kind']} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def empty_bucket(self) -> None:
        """Delete every object, so moto does not keep gigabytes around between uploads."""
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=BUCKET):
            for item in page.get("Contents", []):
                self.s3.delete_object(Bucket=BUCKET, Key=item["Key"])

    def _measure_api(self, tag: str) -> dict:
        record_id = self.create_draft()
        url = f"{self.base_url}/api/records/{record_id}/draft/files/bench/{tag}.bin"
        worker_rss_before = proc_status_kib(self.worker_pid, "VmRSS")
        worker_hwm_before = proc_status_kib(self.worker_pid, "VmHWM")
        reset = reset_high_water_mark(self.worker_pid)
        worker_cpu, moto_cpu = proc_cpu_seconds(self.worker_pid), proc_cpu_seconds(self.moto.pid)
        quiet = wait_until_quiet(self.args.quiet_wait)
        with CpuSampler(self.worker_pid) as sampler:
            result = self.client({"kind": "api", "url": url, "token": self.token})
        result.update(
            label="API PUT (requests -> gunicorn -> S3Storage)",
            trace=summarize_trace(self.worker_trace, result["started"], result["started"] + result["elapsed"]),
            machine_busy_cores=sampler.machine_busy_cores,
            machine_busy_seconds=sampler.machine_busy_seconds,
            busy_before=quiet,
            worker_threads_cpu=[round(seconds, 2) for _, seconds in sampler.thread_cpu[:6]],
            worker_cpu=proc_cpu_seconds(self.worker_pid) - worker_cpu,
            moto_cpu=proc_cpu_seconds(self.moto.pid) - moto_cpu,
            worker_rss_before_kib=worker_rss_before,
            worker_hwm_before_reset_kib=worker_hwm_before,
            worker_hwm_reset=reset,
            worker_peak_kib=proc_status_kib(self.worker_pid, "VmHWM"),
            worker_rss_after_kib=proc_status_kib(self.worker_pid, "VmRSS"),
        )
        if result["status"] != 201:
            raise RuntimeError(f"the API upload answered {result['status']}: {json.dumps(result['response'])[:2000]}"
                               f"\n{log_tail(self.tmp / 'gunicorn.log')}")
        got = result["response"].get("sha256")
        result["sha256_ok"] = got == self.sha256
        if not result["sha256_ok"]:
            raise RuntimeError(f"the server's sha256 {got} is not the file's {self.sha256}")
        if result["response"].get("size") != self.size:
            raise RuntimeError(f"the server stored {result['response'].get('size')} bytes, not {self.size}")
        self.empty_bucket()
        return result

    def _measure_boto3(self, tag: str, kind: str, label: str, transfer_config: dict | None) -> dict:
        moto_cpu = proc_cpu_seconds(self.moto.pid)
        quiet = wait_until_quiet(self.args.quiet_wait)
        with CpuSampler(None) as sampler:
            trace = self.tmp / f"client-s3-calls-{tag}.jsonl"
            result = self.client({"kind": kind, "endpoint": self.endpoint, "key": f"baseline/{tag}",
                                  "transfer_config": transfer_config, "trace": str(trace)})
        result["trace"] = summarize_trace(trace, result["started"], result["started"] + result["elapsed"])
        result.update(label=label, moto_cpu=proc_cpu_seconds(self.moto.pid) - moto_cpu,
                      machine_busy_cores=sampler.machine_busy_cores,
                      machine_busy_seconds=sampler.machine_busy_seconds, busy_before=quiet)
        if "sha256" in result and result["sha256"] != self.sha256:
            raise RuntimeError(f"{label}: sha256 mismatch")
        head = self.s3.head_object(Bucket=BUCKET, Key=f"baseline/{tag}")
        if head["ContentLength"] != self.size:
            raise RuntimeError(f"{label}: stored {head['ContentLength']} bytes, not {self.size}")
        self.empty_bucket()
        return result

    # the nbarchive client: direct upload to presigned part URLs, and a resume after SIGKILL

    def start_celery(self) -> None:
        """A Celery worker with the app's settings: it runs each upload's check (reading the object back)."""
        log = self.tmp / "celery.log"
        with open(log, "wb") as out:
            self.celery = subprocess.Popen(
                [*app_python("-m", "celery"), "-A", "repository", "worker", "--pool", "solo", "-Q", "celery",
                 "-l", "INFO"], stdout=out, stderr=subprocess.STDOUT,
                env=self.app_env(debug=self.args.django_debug, gunicorn=True), cwd=APP_DIR)
        deadline = time.monotonic() + 120
        while b" ready." not in log.read_bytes():
            if self.celery.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the celery worker did not start:\n{log_tail(log)}")
            time.sleep(0.2)

    def cli_spec(self, record: str, tag: str) -> dict:
        return {"kind": "cli", "app_dir": str(APP_DIR), "url": self.base_url, "token": self.token, "record": record,
                "path": f"bench/{tag}.bin", "jobs": self.args.cli_jobs, "cache": str(self.tmp / f"cache-{tag}")}

    def warm_up_cli(self) -> None:
        """One small upload through the client first: the app loads the upload views and its presigning S3 client
        lazily, once per process, as the API path's own warm-up (create_draft) does for its code."""
        small = self.tmp / "warm-up.bin"
        small.write_bytes(os.urandom(MIB))
        spec = {**self.cli_spec(self.create_draft(), "warm-up"), "file": str(small), "timeout": self.timeout}
        subprocess.run([sys.executable, __file__, "--client", json.dumps(spec)], capture_output=True, check=True,
                       timeout=self.timeout, cwd=self.tmp)
        self.empty_bucket()

    def _measure_cli(self, tag: str) -> dict:
        record_id = self.create_draft()
        rss_before = {pid: proc_status_kib(pid, "VmRSS") for pid in (self.worker_pid, self.celery.pid)}
        for pid in (self.worker_pid, self.celery.pid):
            reset_high_water_mark(pid)
        worker_cpu = proc_cpu_seconds(self.worker_pid) + proc_cpu_seconds(self.celery.pid)
        moto_cpu = proc_cpu_seconds(self.moto.pid)
        quiet = wait_until_quiet(self.args.quiet_wait)
        with CpuSampler(None) as sampler:
            result = self.client(self.cli_spec(record_id, tag))
        result.update(
            label=f"nbarchive upload (parts straight to S3, {result['jobs']} at once; hash + send + check)",
            machine_busy_cores=sampler.machine_busy_cores, machine_busy_seconds=sampler.machine_busy_seconds,
            busy_before=quiet, moto_cpu=proc_cpu_seconds(self.moto.pid) - moto_cpu,
            worker_cpu=proc_cpu_seconds(self.worker_pid) + proc_cpu_seconds(self.celery.pid) - worker_cpu,
            worker_peak_kib=proc_status_kib(self.worker_pid, "VmHWM"),
            celery_peak_kib=proc_status_kib(self.celery.pid, "VmHWM"),
            worker_rss_before_kib=rss_before[self.worker_pid], celery_rss_before_kib=rss_before[self.celery.pid])
        if result["state"] != "ready" or result["sha256"] != self.sha256:
            raise RuntimeError(f"the client's upload ended {result['state']} with sha256 {result['sha256']}")
        self.empty_bucket()
        return result

    def _upload_progress(self) -> int:
        """Bytes moto holds of the one direct upload under way (ListParts), asked of moto itself: the app's single
        sync worker would answer too late to catch the transfer half-way."""
        uploads = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix="uploads/direct/").get("Uploads", [])
        if not uploads:
            return 0
        parts = self.s3.list_parts(Bucket=BUCKET, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"])
        return sum(part["Size"] for part in parts.get("Parts", []))

    def measure_resume(self, number: int) -> dict:
        """Start the client in a process of its own, SIGKILL it once the store holds about half the file, run it
        again; what the first run wrote to its sockets beyond the parts the store kept was sent for nothing."""
        record_id = self.create_draft()
        spec = self.cli_spec(record_id, f"resume-{number}")
        env = {**os.environ, "NBARCHIVE_URL": self.base_url, "NBARCHIVE_TOKEN": self.token,
               "NBARCHIVE_CACHE_DIR": spec["cache"], "PYTHONPATH": str(APP_DIR)}
        counter = self.tmp / f"sent-{number}"
        jobs = ["--jobs", str(self.args.cli_jobs)] if self.args.cli_jobs else []
        killed = subprocess.Popen([sys.executable, "-c", COUNTING_CLIENT, str(counter), "-q", "upload", record_id,
                                   str(self.file), "--to", "bench", *jobs],
                                  env=env, cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.timeout
        while self._upload_progress() < self.size // 2:
            if killed.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the client to be killed ended first: {killed.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        written = struct.unpack("<q", counter.read_bytes()[:8])[0]
        held = self._upload_progress()
        spec["path"] = f"bench/{self.file.name}"
        resumed = self.client(spec)
        if resumed["state"] != "ready" or resumed["sha256"] != self.sha256:
            raise RuntimeError(f"the resumed upload ended {resumed['state']}")
        self.empty_bucket()
        wasted = written - held
        print(f"  run {number}: killed at {held / self.size:.0%} held, resumed in {resumed['elapsed']:.2f} s",
              flush=True)
        return {"held_at_kill": held, "written_before_kill": written, "resent": wasted,
                "resumed_sent": resumed["sent_bytes"], "resumed_elapsed": resumed["elapsed"]}

    def report_cli(self, row: dict) -> None:
        cli, boto = row["cli"], row["boto3"]
        timings = cli["timings"]
        send = timings["parts_sent"] - timings["began"]
        # Three spans of the client's run against boto3 upload_file's whole run (CreateMultipartUpload, the parts,
        # CompleteMultipartUpload: the same S3 work). The transfer: from the start request (the app's
        # CreateMultipartUpload) to CompleteMultipartUpload's answer. The client's side: the hashing pass too (the
        # protocol declares the file's SHA-256 before the first part). End to end: also the server's check (the
        # object read back, SHA-256 and MD5) until the file is ready -- what a user waits for.
        spans = {"cli_ratio_transfer": timings["completed"] - timings["hashed"],
                 "cli_ratio_client": timings["completed"], "cli_ratio": cli["elapsed"]}
        for name, seconds in spans.items():
            row[name] = boto["elapsed"] / seconds
        flag = "  DISTURBED by other processes" if cli["disturbed"] else ""
        print(f"  {cli['label']:<70} {cli['elapsed']:7.2f} s {cli['mib_per_s']:8.1f} MiB/s{flag}")
        print(f"      phases: hashing {timings['hashed']:.2f} s, start {timings['began'] - timings['hashed']:.2f} s,"
              f" parts {send:.2f} s ({self.size / MIB / send:.1f} MiB/s), complete (CompleteMultipartUpload)"
              f" {timings['completed'] - timings['parts_sent']:.2f} s,"
              f" server check (read back, sha256 + md5) {timings['checked'] - timings['completed']:.2f} s;"
              f" CPU s: client {cli['client_cpu']:.1f}, moto {cli['moto_cpu']:.1f}, app {cli['worker_cpu']:.1f};"
              f" client peak RSS {mib(cli['client_peak_kib']):.1f} MiB")
        if cli.get("part_headers"):
            print(f"      what each part PUT carried: {describe_part_headers(cli['part_headers'])}")
        print(f"  ratio of throughputs, nbarchive client / boto3 upload_file (target >= {CLI_RATIO_TARGET}):")
        for name, what in (("cli_ratio_transfer", "start request to completed upload (no hashing, no check)"),
                           ("cli_ratio_client", "client's side: hashing pass + transfer (no server check)"),
                           ("cli_ratio", "end to end: hashing + transfer + server check, file ready")):
            verdict = "OK" if row[name] >= CLI_RATIO_TARGET else "BELOW TARGET"
            print(f"      {what:<60} {spans[name]:7.2f} s vs {boto['elapsed']:.2f} s: {row[name]:.2f}  {verdict}")
        peak = max(mib(cli["worker_peak_kib"]), mib(cli["celery_peak_kib"]))
        print(f"  app peak RSS during the client's upload: gunicorn worker {mib(cli['worker_peak_kib']):.1f} MiB"
              f" ({mib(cli['worker_rss_before_kib']):.1f} before), celery worker (the check)"
              f" {mib(cli['celery_peak_kib']):.1f} MiB ({mib(cli['celery_rss_before_kib']):.1f} before)"
              f" (target < {APP_MEMORY_TARGET_MIB})"
              f"  {'OK' if peak < APP_MEMORY_TARGET_MIB else 'ABOVE TARGET'}")
        resume = row["resume"]
        share = resume["resent"] / self.size
        print(f"  killed (SIGKILL) with {resume['held_at_kill'] / MIB:.0f} MiB held"
              f" ({resume['held_at_kill'] / self.size:.0%}); it had written {resume['written_before_kill'] / MIB:.1f}"
              f" MiB; resumed, it sent {resume['resumed_sent'] / MIB:.1f} MiB in {resume['resumed_elapsed']:.2f} s;"
              f" sent again: {resume['resent'] / MIB:.1f} MiB = {share:.1%} of the file (target < 5%)"
              f"  {'OK' if share < 0.05 else 'ABOVE TARGET'}")
        row["cli_ok"] = (row["cli_ratio"] >= CLI_RATIO_TARGET and peak < APP_MEMORY_TARGET_MIB and share < 0.05)

    def measure(self, name: str, number: int, *args) -> dict:
        """One timed upload; measured again (up to --retries times) when other processes took much CPU meanwhile."""
        attempts = []
        for attempt in range(1 + self.args.retries):
            tag = f"{name}-{number}-{attempt}"
            if name == "api":
                result = self._measure_api(tag)
            elif name == "cli":
                result = self._measure_cli(tag)
            else:
                result = self._measure_boto3(tag, *args)
            # CPU the machine spent on anything but the client, moto and the worker (other people's processes,
            # kernel threads such as loopback networking and page-cache writeback, which are always a little busy):
            # above 0.3 s plus a quarter of a core on average, the figure is marked disturbed.
            result["other_cpu"] = (result["machine_busy_seconds"] - result["client_cpu"] - result["moto_cpu"]
                                   - result.get("worker_cpu", 0.0))
            result["disturbed"] = result["other_cpu"] > 0.3 + 0.25 * result["elapsed"]
            result["mib_per_s"] = self.size / MIB / result["elapsed"]
            attempts.append(result)
            note = f" (disturbed: other processes took {result['other_cpu']:.1f} CPU s)" if result["disturbed"] else ""
            print(f"  run {number}: {result['label']}: {result['elapsed']:.2f} s{note}", flush=True)
            if not result["disturbed"]:
                break
        result["attempts"] = len(attempts)
        result["disturbed_attempts"] = [round(item["elapsed"], 3) for item in attempts if item["disturbed"]]
        return result

    def go(self) -> int:
        args = self.args
        print(f"nbarchive upload bench: {args.size_mb} MiB, {args.repeat} run(s), app {APP_DIR}, temp dir {self.tmp}",
              flush=True)
        self.start_moto()
        pinned = ""
        if args.pin_moto:
            pinned = (f"; moto pinned to CPUs {os.sched_getaffinity(self.moto.pid)},"
                      f" the rest to {os.sched_getaffinity(0)}")
        print(f"  moto S3 at {self.endpoint}{pinned}", flush=True)
        self.file = self.tmp / "payload.bin"
        started = time.perf_counter()
        self.sha256 = generate_file(self.file, self.size)
        print(f"  test file written in {time.perf_counter() - started:.1f} s, sha256 {self.sha256}", flush=True)
        self.set_up_app()
        self.start_gunicorn()
        print(f"  gunicorn at {self.base_url}, worker pid {self.worker_pid}, DJANGO_DEBUG={int(args.django_debug)},"
              f" S3_MULTIPART_CHUNK_SIZE={f'{args.chunk_mb} MiB' if args.chunk_mb else 'unset'},"
              f" S3_MULTIPART_CONCURRENCY={args.concurrency or 'unset'}"
              f"{', ' + ' '.join(args.worker_env) if args.worker_env else ''}", flush=True)
        self.create_draft()  # warm up: URLconf, DRF, the DB connection, the S3 client are loaded lazily
        if not args.skip_cli:
            self.start_celery()
            self.warm_up_cli()
            print(f"  celery worker (the uploads' checks) pid {self.celery.pid}", flush=True)
        app_config = self.app_config
        rows = []
        for number in range(1, args.repeat + 1):
            row = {"run": number}
            if not args.skip_cli:  # first, so the app's memory is not what an earlier upload left behind
                row["cli"] = self.measure("cli", number)
            # next to the client's upload, so that the two see the same machine
            row["boto3"] = self.measure(
                "boto3", number, "boto3-file", "boto3 upload_file (default TransferConfig)", None)
            if not args.skip_cli:
                row["resume"] = self.measure_resume(number)
            if not args.skip_api:
                row["api"] = self.measure("api", number)
            if args.diagnose:
                row["boto3_app_config"] = self.measure(
                    "boto3-app", number, "boto3-file", "boto3 upload_file (app TransferConfig)", app_config)
                row["boto3_stream"] = self.measure(
                    "boto3-stream", number, "boto3-stream",
                    "boto3 upload_fileobj non-seekable+sha256+md5 (app TransferConfig)", app_config)
            rows.append(row)
        overall_hwm = proc_status_kib(self.worker_pid, "VmHWM")
        self.report(rows, overall_hwm, app_config)
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "sha256": self.sha256, "runs": rows,
                                                   "app_transfer_config": app_config}, indent=2, default=str))
        api_ok = all(row["api_ratio"] >= RATIO_TARGET and mib(row["api"]["worker_peak_kib"]) < WORKER_MEMORY_TARGET_MIB
                     for row in rows if "api" in row)
        cli_ok = all(row["cli_ok"] for row in rows if "cli" in row)
        return 0 if api_ok and cli_ok else 1

    def report(self, rows: list[dict], overall_hwm: int | None, app_config: dict) -> None:
        size_mib = self.size / MIB
        print()
        print(f"file size: {size_mib:.0f} MiB ({self.size} bytes); app TransferConfig: "
              f"threshold {app_config['multipart_threshold'] / MIB:g} MiB,"
              f" part {app_config['multipart_chunksize'] / MIB:g} MiB, "
              f"concurrency {app_config['max_request_concurrency']}, "
              f"in-memory chunks {app_config['max_in_memory_upload_chunks']}")
        for row in rows:
            print(f"run {row['run']}:")
            for key in ("boto3", "api", "boto3_app_config", "boto3_stream"):
                if key not in row:
                    continue
                item = row[key]
                extra = f", gunicorn worker {item['worker_cpu']:.1f}" if key == "api" else ""
                flag = ""
                if item["disturbed"]:
                    flag = "  DISTURBED by other processes"
                elif item["disturbed_attempts"]:
                    flag = f"  (after disturbed attempts of {item['disturbed_attempts']} s)"
                print(f"  {item['label']:<70} {item['elapsed']:7.2f} s {item['mib_per_s']:8.1f} MiB/s{flag}")
                print(f"      CPU s: client {item['client_cpu']:.1f}, moto {item['moto_cpu']:.1f}{extra},"
                      f" anything else {item['other_cpu']:.1f};"
                      f" machine busy {item['machine_busy_cores']:.2f} of {os.cpu_count()} cores"
                      f" ({item['busy_before']:.2f} just before);"
                      f" client peak RSS {mib(item['client_peak_kib']):.1f} MiB")
                trace = item.get("trace") or {}
                if trace.get("parts"):
                    timeline = (f"      S3 timeline: first UploadPart at {trace['first_part_start']:.2f} s,"
                                f" {trace['parts']} parts (median {trace['part_seconds_median']:.2f} s,"
                                f" max {trace['part_seconds_max']:.2f} s),"
                                f" last part done at {trace['last_part_end']:.2f} s")
                    if "complete_seconds" in trace:
                        timeline += (f", CompleteMultipartUpload {trace['complete_start']:.2f}"
                                     f" + {trace['complete_seconds']:.2f} s")
                    if key == "api":
                        timeline += f"; last body byte sent at {item['elapsed'] - item['server_tail']:.2f} s"
                    print(timeline)
                if key == "api":
                    print(f"      worker CPU s by thread (top): {item['worker_threads_cpu']}")
                if item.get("part_headers"):
                    print(f"      what each UploadPart carried: {describe_part_headers(item['part_headers'])}")
            if "api" in row:
                self.report_api(row)
            if "cli" in row:
                self.report_cli(row)
        print(f"gunicorn worker peak RSS overall (start-up included, VmHWM at the end): {mib(overall_hwm):.1f} MiB")
        print(f"moto server peak RSS: {mib(proc_status_kib(self.moto.pid, 'VmHWM')):.1f} MiB")

    def report_api(self, row: dict) -> None:
        row["api_ratio"] = row["api"]["mib_per_s"] / row["boto3"]["mib_per_s"]
        api = row["api"]
        print(f"  ratio API / boto3 upload_file throughput: {row['api_ratio']:.2f} (target >= {RATIO_TARGET})"
              f"  {'OK' if row['api_ratio'] >= RATIO_TARGET else 'BELOW TARGET'}")
        # moto's CompleteMultipartUpload (it concatenates every part in memory) takes the same seconds on both
        # sides and pulls the ratio towards 1; up to the end of the last UploadPart is the transfer itself.
        api_parts, base_parts = api.get("trace", {}), row["boto3"].get("trace", {})
        if api_parts.get("last_part_end") and base_parts.get("last_part_end"):
            row["api_ratio_parts"] = base_parts["last_part_end"] / api_parts["last_part_end"]
            print(f"  ratio up to the last UploadPart (without moto's CompleteMultipartUpload):"
                  f" {row['api_ratio_parts']:.2f} ({api_parts['last_part_end']:.2f} s vs"
                  f" {base_parts['last_part_end']:.2f} s)")
        peak = mib(api["worker_peak_kib"])
        scope = "during this upload" if api["worker_hwm_reset"] else "since start (VmHWM could not be reset)"
        print(f"  gunicorn worker peak RSS {scope}: {peak:.1f} MiB (target < {WORKER_MEMORY_TARGET_MIB})"
              f"  {'OK' if peak < WORKER_MEMORY_TARGET_MIB else 'ABOVE TARGET'};"
              f" RSS before {mib(api['worker_rss_before_kib']):.1f} MiB,"
              f" after {mib(api['worker_rss_after_kib']):.1f}"
              f" MiB; server sha256 matches: {api['sha256_ok']}")

    def close(self) -> None:
        stop(self.celery, "celery worker")
        stop(self.gunicorn, "gunicorn")
        stop(self.moto, "moto server")
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=2048, help="test file size in MiB (default 2048)")
    parser.add_argument("--repeat", type=int, default=1, help="measure this many API + boto3 pairs (default 1)")
    parser.add_argument("--chunk-mb", type=int, default=0, help="set S3_MULTIPART_CHUNK_SIZE (MiB) for the app")
    parser.add_argument("--concurrency", type=int, default=0, help="set S3_MULTIPART_CONCURRENCY for the app")
    parser.add_argument("--django-debug", action="store_true",
                        help="run gunicorn with DJANGO_DEBUG=1 (default 0, with a random SECRET_KEY)")
    parser.add_argument("--diagnose", action="store_true",
                        help="also time boto3 with the app's TransferConfig, from a file and from a hashing stream")
    parser.add_argument("--timeout", type=float, default=0, help="seconds allowed per upload (default 300 + 1 s/MiB)")
    parser.add_argument("--quiet-wait", type=float, default=300,
                        help="before each upload, wait up to this many seconds for the machine to be idle for 3 s "
                             "(default 300)")
    parser.add_argument("--retries", type=int, default=2,
                        help="measure an upload again, up to this many times, when other processes disturbed it")
    parser.add_argument("--pin-moto", action="store_true",
                        help="run moto on the last CPU and everything else on the others, so the S3 stand-in and "
                             "the system under test do not compete for cores (as when S3 is another machine)")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment variable for gunicorn only, e.g. MALLOC_ARENA_MAX=2 (repeatable)")
    parser.add_argument("--skip-cli", action="store_true",
                        help="leave out the nbarchive client's direct upload and its kill-and-resume run")
    parser.add_argument("--cli-jobs", type=int, default=0,
                        help="parts the nbarchive client sends at once (default: the client's own, as a user gets)")
    parser.add_argument("--skip-api", action="store_true",
                        help="leave out the upload through the application (PUT /api/records/<id>/draft/files/...)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--app-dir", type=Path, default=REPO_ROOT,
                        help="run the app from this checkout, e.g. a `git worktree` with a change to try "
                             "(default: the checkout holding this script)")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        print(json.dumps(client_main(json.loads(args.client))))
        return 0
    global APP_DIR
    APP_DIR = args.app_dir.resolve()
    if not (APP_DIR / "manage.py").is_file():
        parser.error(f"{APP_DIR} has no manage.py")
    if args.size_mb < 1 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1")
    free = shutil.disk_usage(tempfile.gettempdir()).free
    # the file, moto's parts and the completed object each take the file's size on disk
    if free < 3.5 * args.size_mb * MIB:
        parser.error(f"{tempfile.gettempdir()} has {free / MIB:.0f} MiB free; {3.5 * args.size_mb:.0f} MiB needed")

    def on_sigterm(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    bench = Bench(args)
    try:
        return bench.go()
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
