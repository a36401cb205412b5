"""The nbclient side of the collector (kernel_collector.py): a NotebookClient over a kernel client that counts
every byte it receives against the collector's output cap, refuses messages not shaped like Jupyter messages and
never reconnects. Kept apart so the collector stays readable; like it, this file imports nothing of nbarchive or
Django (it is also shipped into GitLab CI jobs).
"""

import asyncio


def log(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def make_notebook_client(collector, notebook, session, context, sockets: dict):
    """An nbclient NotebookClient over a kernel client that counts, checks and never reconnects."""
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient

    try:
        from jupyter_client.channels import AsyncZMQSocketChannel
    except ImportError:  # jupyter_client 7 (Debian 12's, in a GitLab job's image): its socket channel is the async one
        from jupyter_client.channels import ZMQSocketChannel as AsyncZMQSocketChannel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionComplete

    class CheckedChannel(AsyncZMQSocketChannel):
        """Counts every message as it arrives, before the slower work of checking and parsing it: a flood reaches
        the cap at the speed the kernel sends, and what waits to be parsed is bounded by the cap."""

        def __init__(self, socket, session):
            super().__init__(socket, session)
            self.arrived: asyncio.Queue = asyncio.Queue()
            self.pump = asyncio.ensure_future(self._pump())

        async def _pump(self):
            while collector.stop_status is None:
                frames = await self.socket.recv_multipart()
                collector.count(sum(len(frame) for frame in frames))
                self.arrived.put_nowait(frames)
                await asyncio.sleep(0)  # a waiting message resolves at once: let the wall clock and nbclient run

        async def get_msg(self, timeout=None):
            try:
                frames = await asyncio.wait_for(self.arrived.get(), timeout)
            except TimeoutError:
                raise Empty from None
            try:
                _, message = self.session.feed_identities(frames)
                message = self.session.deserialize(message)
                check_shape(message)
            except MemoryError:
                collector.out_of_memory()
            except Exception as exc:  # noqa: BLE001 - whatever the kernel sent, it is not a Jupyter message
                collector.stop({"outcome": "protocol_error", "message": f"{type(exc).__name__}: {exc}"[:500]})
            if collector.stop_status is not None:
                await asyncio.Future()  # never returns: the run is being stopped and nbclient cancelled
            return message

        def msg_ready(self):
            return not self.arrived.empty()

        def close(self):
            self.pump.cancel()
            super().close()

    class SandboxKernelClient(AsyncKernelClient):
        def start_channels(self, *args, **kwargs):
            pass  # connected already

        def stop_channels(self):
            for channel in (self._shell_channel, self._iopub_channel):
                if channel is not None:
                    channel.close()

        async def _async_is_alive(self):
            return collector.kernel_alive()

        is_alive = _async_is_alive

    class SandboxKernel:
        """What nbclient asks of a kernel manager when it does not start the kernel itself."""

        has_kernel = True

    class SandboxNotebookClient(NotebookClient):
        def process_message(self, msg, cell, cell_index):
            try:
                return super().process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                raise
            except MemoryError:
                collector.out_of_memory()
                raise CellExecutionComplete() from None
            except Exception as exc:  # noqa: BLE001 - a well-signed message nbclient cannot use
                collector.stop({"outcome": "protocol_error",
                                "message": f"{msg.get('msg_type')}: {type(exc).__name__}: {exc}"[:500]})
                raise CellExecutionComplete() from None

    kc = SandboxKernelClient(session=session, context=context)
    kc._shell_channel = CheckedChannel(sockets["shell"], session)
    kc._iopub_channel = CheckedChannel(sockets["iopub"], session)
    kc.allow_stdin = False

    def on_cell_execute(cell, cell_index, **_):
        collector.current_cell = cell_index

    def on_cell_executed(cell, cell_index, **_):
        log(f"cell {cell_index} done, {collector.received_bytes} bytes received so far")

    cell_timeout = int(collector.spec["cell_timeout_seconds"])
    client = SandboxNotebookClient(
        notebook, km=SandboxKernel(), timeout=cell_timeout, allow_errors=False, record_timing=True,
        # nbclient waits 4 s by default for a cell's outputs after its reply, then drops the rest: on a busy
        # worker a collector that lags behind a chatty cell would lose outputs. Nothing is ever dropped on the
        # way, so the outputs end with the kernel's "idle"; a kernel that never sends it has timed the cell out.
        iopub_timeout=cell_timeout, raise_on_iopub_timeout=True,
        on_cell_execute=on_cell_execute, on_cell_executed=on_cell_executed,
    )
    client.kc = kc
    return client


def check_shape(message) -> None:
    for part in ("header", "parent_header", "metadata", "content"):
        if not isinstance(message.get(part), dict):
            raise TypeError(f"the message's {part} is not an object")
    if not isinstance(message.get("msg_type"), str) or not isinstance(message["parent_header"].get("msg_id", ""),
                                                                      str):
        raise TypeError("the message has no usable type or parent")
