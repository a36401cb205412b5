"""A real registry on loopback for the tests: Debian's `docker-registry` (distribution v2), storage in a folder.

`LocalRegistry.start(folder)` serves plain HTTP on a free 127.0.0.1 port; with `users={"name": "password"}` it
requires htpasswd (bcrypt) authentication. `push(layout, name)` copies an OCI layout into it with skopeo and
returns the reference pinned by digest.
"""

import json
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_TOOLS = ("docker-registry", "skopeo")


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def htpasswd_line(user: str, password: str) -> str:
    import bcrypt  # the registry accepts bcrypt entries only

    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"


@dataclass
class LocalRegistry:
    folder: Path
    port: int
    process: subprocess.Popen
    users: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, folder: Path, *, users: dict[str, str] | None = None) -> "LocalRegistry":
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        auth = ""
        if users:
            (folder / "htpasswd").write_text("".join(htpasswd_line(u, p) + "\n" for u, p in users.items()))
            auth = f"auth:\n  htpasswd:\n    realm: nbarchive-tests\n    path: {folder / 'htpasswd'}\n"
        config = folder / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n{auth}")
        with open(folder / "registry.log", "wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log,
                                       stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    log = (folder / "registry.log").read_text()[-800:]
                    raise RuntimeError(f"docker-registry did not start: {log}") from None
                time.sleep(0.1)
        return cls(folder=folder, port=port, process=process, users=dict(users or {}))

    def push(self, layout: Path, name: str, *, tag: str = "img") -> str:
        """Copy the layout's image to <host>/<name>; return host/name@sha256:<digest of the pushed manifest>."""
        with tempfile.TemporaryDirectory() as work:
            digest_file = Path(work) / "digest"
            credentials = []
            if self.users:
                user, password = next(iter(self.users.items()))
                auth_file = Path(work) / "auth.json"
                auth_file.write_text(json.dumps(auth_file_content({self.host: (user, password)})))
                credentials = [f"--authfile={auth_file}"]
            result = subprocess.run(  # noqa: PLW1510 (the return code is read below)
                ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false", *credentials,
                 f"--digestfile={digest_file}", f"oci:{layout}:{tag}", f"docker://{self.host}/{name}:latest"],
                capture_output=True, text=True, timeout=600, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                                   "HOME": work, "TMPDIR": work})
            if result.returncode != 0:
                raise RuntimeError(f"pushing {name} failed: {result.stderr[-1000:]}")
            return f"{self.host}/{name}@{digest_file.read_text().strip()}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def auth_file_content(credentials: dict[str, tuple[str, str]]) -> dict:
    import base64

    return {"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
                      for host, (user, password) in credentials.items()}}
