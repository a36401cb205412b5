"""Run by the kernel inside the local sandbox at start-up (IPKernelApp.exec_files), before any cell.

It makes ipykernel deliver every output, in bounded messages, so that the collector outside the sandbox
(kernel_collector.py) sees all of it and can apply the output cap to what the notebook really printed:
- IOPub never drops a message: by default ZeroMQ silently drops what a slow subscriber cannot take yet, so on a
  busy worker a chatty cell lost outputs and came out "not reproduced". With ZMQ_XPUB_NODROP the kernel's IOPub
  thread waits for the collector instead.
- Stream output leaves at least every MB: ipykernel flushes stdout and stderr on a 0.2 s timer only, so a loop
  printing 200 MB within one tick built a single message the kernel could not even encode within its memory limit;
  the output vanished with a MemoryError in the kernel's IOPub thread, and the cell looked quiet.
This serves honest notebooks; it is no security boundary. A notebook can undo it and then only loses its own
outputs: the collector counts and checks whatever arrives. It leaves no name in the notebook's namespace.
"""


def _nbarchive_startup():
    import zmq
    from ipykernel.iostream import OutStream
    from IPython import get_ipython

    try:
        iopub = get_ipython().kernel.iopub_thread
        iopub.schedule(lambda: iopub.socket.setsockopt(zmq.XPUB_NODROP, 1))  # ZeroMQ sockets belong to one thread
    except (AttributeError, zmq.ZMQError):
        pass  # an ipykernel built otherwise: outputs may then be dropped, never forged

    flush_every = 1024 * 1024
    write = OutStream.write

    def write_in_bounded_messages(self, string):
        written = write(self, string)
        self._nbarchive_unflushed = getattr(self, "_nbarchive_unflushed", 0) + len(string)
        if self._nbarchive_unflushed >= flush_every:
            self._nbarchive_unflushed = 0
            self.flush()
        return written

    OutStream.write = write_in_bounded_messages


_nbarchive_startup()
del _nbarchive_startup
