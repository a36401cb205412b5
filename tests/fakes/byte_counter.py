"""A TCP forwarder on loopback that counts the bytes clients send through it, optionally at a limited rate.

Put in front of a server (the app, or the S3 endpoint the app signs URLs for), it is an account of what a client
really sent that does not rely on the client's own word: how much a resumed upload sent again. The rate limit
stretches a transfer on loopback so a test can interrupt it mid-way.
"""

import socket
import threading
import time


class ByteCounter:
    def __init__(self, target_port: int, *, bytes_per_second: float | None = None):
        self.target = ("127.0.0.1", target_port)
        self.rate = bytes_per_second
        self.sent = 0  # client -> server, over the connections opened since the last reset()
        self._generation = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> int:
        """The count so far, and start afresh: bytes still in flight on connections opened before (a killed
        client's, drained from socket buffers) are not counted again."""
        with self._lock:
            sent, self.sent = self.sent, 0
            self._generation += 1
        return sent

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            generation = self._generation
            threading.Thread(target=self._pump, args=(client, server, generation), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, generation: int | None) -> None:
        upstream = generation is not None
        try:
            while data := source.recv(256 * 1024 if not self.rate else 64 * 1024):
                if upstream:
                    with self._lock:
                        if generation == self._generation:
                            self.sent += len(data)
                    if self.rate:
                        time.sleep(len(data) / self.rate)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stopping.set()
        self._listener.close()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
