"""Runs one notebook: the kernel inside the sandbox, nbclient OUTSIDE it, joined by the kernel protocol.

The local runner (local.py) starts this file as a child process of the worker, with the worker's Python:
    python -I kernel_collector.py < SPEC > RESULT 2>> LOG
SPEC is JSON: the submitted notebook, the sandbox command (setpriv/env -i/bwrap, ending in
`python nbarchive_ipykernel_launcher.py -f CONNECTION_FILE`, see kernel_launcher.py), the host side of the
kernel's IPC sockets, the HMAC key, the rlimits and the timeouts. RESULT is one line of status JSON followed by
the executed notebook (nbformat JSON).
It imports nothing of nbarchive or Django; nbclient, jupyter_client and pyzmq come from the worker's environment.

Why this shape (see ../shared/SANDBOX.md): anything inside the sandbox that shares the kernel's uid and PID
namespace belongs to the notebook. So the only process inside is the kernel, and everything the verdict rests on
(the executed notebook, the status, the output size, the peak memory) is built here, in the memory of a process
the notebook cannot see, signal, ptrace or write to. Nothing is read back from the sandbox's files. The kernel
binds its sockets (`<ip>-<port>`, jupyter_client's `transport="ipc"`) in a folder bind-mounted into the sandbox;
this process connects to them from the host side before any cell runs, and never reconnects, so a process the
notebook starts cannot put a socket of its own in their place.

The kernel is hostile and so are its messages:
- every byte received on the shell and IOPub channels counts against the output cap as it arrives, envelopes
  included (a flood of tiny messages is caught as quickly as one huge print); past the cap the kernel is killed;
- a single frame larger than the cap is refused by ZeroMQ itself (ZMQ_MAXMSGSIZE), which drops the connection:
  a disconnect while the kernel lives ends the run as a breach, never as silently missing output;
- a message that fails its signature or is not shaped like a Jupyter message ends the run as a protocol error;
- the wall clock of the whole run is enforced here; the worker kills this process (and with it, through bwrap's
  --die-with-parent, the sandbox) if it overstays, and this process limits its own memory.
Nothing between the kernel and this collector drops output by rate: the IOPub rate limiter of Jupyter is
jupyter_server's (ipykernel has no such option), and kernel_startup.py, run by the kernel before any cell, turns
ZeroMQ's drop-when-full into waiting and flushes stream output in bounded messages. Output the notebook printed
is therefore output the collector counts.
Status "outcome" values: completed, cell_error, cell_timeout, dead_kernel, output_limit, kernel_disconnected,
protocol_error, collector_memory (what the kernel sent exhausted this process's memory), timed_out,
kernel_start_failed, and driver_error when the collector itself failed.

Whether the sandbox came up at all is bwrap's word, never the log's: the command holds BWRAP_STATUS_FD where bwrap
takes `--json-status-fd`, and the collector gives it a pipe. bwrap writes `{"child-pid": N}` once it has cloned
the sandbox's first process and `{"exit-code": N}` when the command it started exits, the latter only if its set-up
finished and the command was really executed. The status's "bwrap" says what bwrap reported and whether it ended
by itself (rather than killed by this collector), so the worker can tell a sandbox that never started (the
operator's problem) from a kernel that died at start-up (the notebook's) whatever either printed. A command without
the placeholder (the GitLab job's, which has no bwrap) gets no "bwrap".
"""

import asyncio
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time

# This file runs as a script (`python -I`, so its folder is not on sys.path); its siblings are imported explicitly.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernel_client import make_notebook_client  # noqa: E402
from sandbox_process import read_bwrap_status, tree_rss_bytes  # noqa: E402

# Only what the kernel protocol needs: the kernel never gets a stdin or control connection from us, and liveness
# comes from the sandbox process itself, not from heartbeats the kernel could fake.
CHANNELS = ("shell", "iopub")
MEMORY_SAMPLE_SECONDS = 0.25
CONNECT_ATTEMPT_SECONDS = 1.0
DISCONNECT_GRACE_SECONDS = 1.0  # a dying kernel closes its sockets a moment before the sandbox exits
BWRAP_STATUS_FD = "{bwrap_json_status_fd}"  # in the command: the number of the pipe bwrap reports its status on


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Collector:
    def __init__(self, spec: dict):
        self.spec = spec
        self.max_output_bytes = int(spec["max_output_bytes"])
        self.received_bytes = 0
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.peak_memory = 0
        self.stop_status: dict | None = None  # why the collector ended the run itself; wins over nbclient's view
        self.current_cell: int | None = None
        self.execution: asyncio.Task | None = None
        self.context = None  # the ZeroMQ context of the kernel's connections
        self.monitors: dict = {}  # channel -> the monitor socket of its connection
        self.bwrap_status_pipe: int | None = None  # the read end of bwrap's --json-status-fd
        self.ended_by_itself: bool | None = None  # whether the sandbox had ended before this collector killed it

    # --- the run ---------------------------------------------------------------------------------------
    def run(self) -> tuple[dict, bytes | None]:
        # The sandbox starts first, before any thread exists here (preexec_fn is only safe then), and boots its
        # kernel while this process imports nbclient and ZeroMQ.
        self.started = time.monotonic()
        command, pass_fds = list(self.spec["command"]), ()
        if BWRAP_STATUS_FD in command:
            self.bwrap_status_pipe, status_write = os.pipe()
            command = [str(status_write) if part == BWRAP_STATUS_FD else part for part in command]
            pass_fds = (status_write,)
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                stderr=sys.stderr.fileno(), env={}, preexec_fn=self._apply_limits,  # noqa: PLW1509 - no thread yet
                start_new_session=True, close_fds=True, pass_fds=pass_fds,
            )
        finally:
            for descriptor in pass_fds:
                os.close(descriptor)  # bwrap alone holds the write end: its exit ends what can be read
        notebook = None
        try:
            import nbformat

            notebook = _cleared(nbformat.reads(self.spec["notebook"], as_version=4))
            status = asyncio.run(self._collect(notebook))
        except MemoryError:
            self.out_of_memory()
            status = dict(self.stop_status)
        except Exception as exc:  # noqa: BLE001 - reported as the run's failure, never hidden
            status = {"outcome": "driver_error", "message": f"the collector failed: {type(exc).__name__}: {exc}"[:2000]}
        finally:
            self._kill()
        status["seconds"] = round(time.monotonic() - self.started, 3)
        status["peak_memory_bytes"] = self.peak_memory or None
        status["output_bytes"] = self.received_bytes
        status["sandbox_returncode"] = self.process.returncode
        if self.bwrap_status_pipe is not None:
            status["bwrap"] = {**read_bwrap_status(self.bwrap_status_pipe), "ended_by_itself": self.ended_by_itself}
        if status["outcome"] != "completed":
            status.setdefault("cell_index", self.current_cell)
        executed = None
        if notebook is not None:
            try:
                executed = nbformat.writes(notebook).encode("utf-8")
            except (ValueError, TypeError, MemoryError) as exc:
                status = {**status, "write_error": str(exc)[:500]}
        return status, executed

    async def _collect(self, notebook) -> dict:
        watchdog = asyncio.ensure_future(self._watch())
        try:
            client = await self._start_client(notebook)
            if client is None:
                return self.stop_status or {"outcome": "kernel_start_failed"}
            self.execution = asyncio.ensure_future(self._execute(client))
            try:
                status = await self.execution
            except asyncio.CancelledError:
                status = {"outcome": "driver_error", "message": "the collector stopped the run"}
            return self.stop_status or status
        finally:
            watchdog.cancel()
            self._kill()
            if self.context is not None:
                self.context.destroy(linger=0)

    async def _execute(self, client) -> dict:
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        try:
            await client.async_execute()
        except CellTimeoutError as exc:
            return {"outcome": "cell_timeout", "message": str(exc)[:2000]}
        except DeadKernelError as exc:
            return {"outcome": "dead_kernel", "message": str(exc)[:2000], "signal": self._exit_signal()}
        except CellExecutionError as exc:
            return {"outcome": "cell_error", "ename": str(exc.ename)[:500], "evalue": str(exc.evalue)[:2000]}
        except Exception as exc:  # noqa: BLE001 - a hostile kernel can break nbclient anywhere: say so, never hide it
            return {"outcome": "driver_error", "message": f"{type(exc).__name__}: {exc}"[:2000]}
        return {"outcome": "completed"}

    def stop(self, status: dict) -> None:
        """End the run now for `status`: kill the sandbox, stop nbclient. The first reason wins."""
        if self.stop_status is None:
            self.stop_status = status
            log(f"nbarchive: stopping the run: {status.get('message') or status['outcome']}")
        self._kill()
        if self.execution is not None and not self.execution.done():
            self.execution.cancel()

    def kernel_alive(self) -> bool:
        return self.stop_status is None and self.process.poll() is None

    # --- the kernel's connection -------------------------------------------------------------------------
    async def _start_client(self, notebook):
        """Wait for the kernel's sockets, connect once, and hand nbclient a client that cannot reconnect."""
        import zmq.asyncio
        from jupyter_client.session import Session

        deadline = self.started + float(self.spec["startup_timeout_seconds"])
        prefix = self.spec["ipc_prefix"]
        paths = {channel: f"{prefix}-{self.spec['ports'][channel]}" for channel in CHANNELS}
        while not all(_is_socket(path) for path in paths.values()):
            if self.process.poll() is not None:
                return None
            if time.monotonic() > deadline:
                self.stop({"outcome": "kernel_start_failed",
                           "message": f"the kernel did not open its sockets within "
                                      f"{self.spec['startup_timeout_seconds']} s"})
                return None
            await asyncio.sleep(0.02)
        session = Session(key=self.spec["key"].encode("ascii"), signature_scheme="hmac-sha256")
        self.context = zmq.asyncio.Context()
        sockets = {}
        for channel, path in paths.items():
            sockets[channel] = await self._connect(channel, path, session, deadline)
            if sockets[channel] is None:
                return None
        client = make_notebook_client(self, notebook, session, self.context, sockets)
        try:
            await asyncio.wait_for(client.kc.wait_for_ready(), max(1.0, deadline - time.monotonic()))
        except (TimeoutError, RuntimeError) as exc:
            if self.process.poll() is None:
                self.stop({"outcome": "kernel_start_failed", "message": f"the kernel did not answer ({exc})"[:500]})
            return None
        for channel in sockets:
            asyncio.ensure_future(self._watch_connection(channel))
        return client

    async def _connect(self, channel: str, path: str, session, deadline: float):
        """A socket connected to the kernel's, handshake done; None when the kernel never accepts.

        Reconnection is off (ZMQ_RECONNECT_IVL=-1): once the first connection ends, nothing the notebook binds at
        that path later can ever be reached. The kernel binds before it listens, so a first attempt can be
        refused; it is then repeated with a fresh socket."""
        import zmq
        from zmq.utils.monitor import parse_monitor_message

        while time.monotonic() < deadline and self.process.poll() is None:
            socket = self.context.socket(zmq.SUB if channel == "iopub" else zmq.DEALER)
            socket.linger = 0
            socket.reconnect_ivl = -1
            socket.maxmsgsize = self.max_output_bytes + 1
            if channel == "iopub":
                socket.setsockopt(zmq.SUBSCRIBE, b"")
            else:
                socket.identity = session.bsession
            monitor = socket.get_monitor_socket()
            socket.connect(f"ipc://{path}")
            attempt_ends = time.monotonic() + CONNECT_ATTEMPT_SECONDS
            while time.monotonic() < attempt_ends:
                if not await monitor.poll(50):
                    continue
                event = parse_monitor_message(await monitor.recv_multipart())["event"]
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self.monitors[channel] = monitor
                    return socket
                if event not in (zmq.EVENT_CONNECTED, zmq.EVENT_CONNECT_DELAYED):
                    break
            socket.disable_monitor()
            monitor.close(linger=0)
            socket.close(linger=0)
            await asyncio.sleep(0.05)
        if self.process.poll() is None:
            self.stop({"outcome": "kernel_start_failed", "message": f"the kernel's {channel} socket never accepted"})
        return None

    async def _watch_connection(self, channel: str) -> None:
        """The connection to the kernel ending while the kernel lives is a breach: an oversized frame (ZeroMQ
        drops the connection) or the notebook closing the kernel's sockets."""
        import zmq
        from zmq.utils.monitor import parse_monitor_message

        monitor = self.monitors[channel]
        while True:
            event = parse_monitor_message(await monitor.recv_multipart())["event"]
            if event not in (zmq.EVENT_DISCONNECTED, zmq.EVENT_CLOSED, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
                continue
            grace_ends = time.monotonic() + DISCONNECT_GRACE_SECONDS
            while self.process.poll() is None and time.monotonic() < grace_ends:
                await asyncio.sleep(0.05)
            if self.process.poll() is None:
                self.stop({"outcome": "kernel_disconnected", "channel": channel,
                           "message": f"the kernel's {channel} connection broke while the kernel was running"})
            return

    def out_of_memory(self) -> None:
        """The kernel's messages exhausted this process's memory (its limit, not the machine's): output under the
        cap can still expand when read (a JSON of a million empty objects is 4 bytes each on the wire, 64 in
        memory). The notebook's output did it, so it is the notebook's resource limit, never a protocol error."""
        self.stop({"outcome": "collector_memory",
                   "message": f"the kernel's messages ({self.received_bytes} bytes) exhausted the collector's memory"})

    def count(self, size: int) -> None:
        """Count `size` bytes received from the kernel against RUNNER_MAX_OUTPUT_MB; past it the run stops.

        The cap is on what the kernel sends, not on the output text: every message counts whole, its envelope
        included (identities, signature, header, parent header, metadata: about 400 bytes per message), so a
        flood of tiny outputs reaches it long before its text would. Counted before anything is parsed."""
        self.received_bytes += size
        if self.received_bytes > self.max_output_bytes:
            self.stop({"outcome": "output_limit",
                       "message": f"the kernel sent more than {self.max_output_bytes} bytes"})

    # --- the sandbox process -------------------------------------------------------------------------------
    async def _watch(self) -> None:
        """The wall clock of the whole run, and the peak memory of the sandbox's processes."""
        deadline = self.started + float(self.spec["notebook_timeout_seconds"])
        while True:
            if time.monotonic() > deadline:
                self.stop({"outcome": "timed_out"})
                return
            if self.process.poll() is None:
                self.peak_memory = max(self.peak_memory, tree_rss_bytes(self.process.pid))
            await asyncio.sleep(MEMORY_SAMPLE_SECONDS)

    def _apply_limits(self) -> None:  # in the child between fork and exec: the whole sandbox inherits them
        limits = self.spec["rlimits"]
        for name, value in limits.items():
            soft, hard = value if isinstance(value, list) else (value, value)
            resource.setrlimit(getattr(resource, name), (soft, hard))

    def _kill(self) -> None:
        # bwrap runs with --die-with-parent and its own PID namespace: killing its session takes every process
        # inside with it, including ones that started sessions of their own.
        if self.process is None:
            return
        if self.ended_by_itself is None:
            self.ended_by_itself = self.process.poll() is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def _exit_signal(self) -> int | None:
        # bwrap exits with 128 + the signal that killed the kernel.
        code = self.process.poll()
        return code - 128 if code is not None and code > 128 else None


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _cleared(notebook):
    # Cells that never run must come back without outputs, not with the submitted ones.
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook


def die_with_worker(worker_pid: int) -> None:
    """End with the worker process that started this one: a worker killed mid-run (its pool process, or all of it)
    must not leave the notebook running for up to its whole time limit beside the attempt that takes the run over.
    bwrap's --die-with-parent then ends the sandbox with this process."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != worker_pid:  # the worker died before the line above
        os._exit(1)


def main() -> int:
    spec = json.loads(sys.stdin.buffer.read())
    if spec.get("worker_pid"):
        die_with_worker(int(spec["worker_pid"]))
    # The soft limit only: the sandbox's own limits are set below the hard one, whatever the worker's uid.
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (int(spec["collector_memory_bytes"]), hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    status, executed = Collector(spec).run()
    sys.stdout.buffer.write(json.dumps(status).encode("utf-8") + b"\n")
    if executed is not None:
        sys.stdout.buffer.write(executed)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
