"""The render worker: `render_notebook_html` in a fresh Python process with a wall-clock timeout (killed when it
expires), an address-space limit and a minimal environment, because Markdown rendering has had
denial-of-service bugs.

`python -m repository.rendering.worker MAX_SIZE MEMORY` reads the notebook's bytes on stdin and writes the page
on stdout; exit code EXIT_REFUSED means "this notebook cannot be rendered", with the reason on stdout.
"""

import logging
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from repository.rendering.errors import NotebookRenderError
from repository.rendering.html import error_page, render_notebook_html

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parents[2]
EXIT_REFUSED = 3  # the worker's exit code for "this notebook cannot be rendered", the reason on stdout
TIMEOUT_MESSAGE = ("The notebook could not be rendered in time. Download the .ipynb file to look at it in "
                   "Jupyter.")
FAILURE_MESSAGE = "The notebook could not be rendered. Download the .ipynb file to look at it in Jupyter."


@dataclass(frozen=True)
class RenderedPage:
    html: str
    status: int = 200


def worker_command(max_size: int, memory: int) -> list[str]:
    return [sys.executable, "-m", "repository.rendering.worker", str(max_size), str(memory)]


def run_worker(notebook_bytes: bytes, *, timeout: float, max_size: int, memory: int) -> RenderedPage:
    """Render in a fresh worker process, killed when `timeout` seconds have passed."""
    with tempfile.TemporaryDirectory(prefix="nbarchive-render-") as home:
        # A minimal environment: the renderer needs no secret, and no user's Jupyter templates or config.
        environment = {"PATH": os.defpath, "HOME": home, "LANG": "C.UTF-8", "TZ": "UTC", "PYTHONHASHSEED": "0",
                       "PYTHONPATH": str(PROJECT_DIR), "PYTHONDONTWRITEBYTECODE": "1",
                       "JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_NO_CONFIG": "1"}
        try:
            completed = subprocess.run(worker_command(max_size, memory), input=notebook_bytes, capture_output=True,
                                       timeout=timeout, env=environment, cwd=home, check=False)
        except subprocess.TimeoutExpired:  # subprocess.run has killed the worker
            logger.warning("Rendering a notebook took longer than %s s; the worker was killed.", timeout)
            return RenderedPage(error_page(TIMEOUT_MESSAGE), 503)
    if completed.returncode == 0:
        return RenderedPage(completed.stdout.decode("utf-8"), 200)
    if completed.returncode == EXIT_REFUSED:
        return RenderedPage(error_page(completed.stdout.decode("utf-8", errors="replace")), 422)
    logger.error("The notebook render worker failed with exit code %s: %s", completed.returncode,
                 completed.stderr[-4000:].decode("utf-8", errors="replace"))
    return RenderedPage(error_page(FAILURE_MESSAGE), 503)


def worker_main(argv: list[str]) -> int:
    import resource

    max_size, memory = int(argv[0]), int(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR)
    notebook_bytes = sys.stdin.buffer.read(max_size + 1)
    try:
        result = render_notebook_html(notebook_bytes, max_size=max_size)
    except NotebookRenderError as exc:
        sys.stdout.buffer.write(exc.message.encode("utf-8"))
        return EXIT_REFUSED
    except MemoryError:
        sys.stdout.buffer.write(b"The notebook needs more memory to render than this server allows.")
        return EXIT_REFUSED
    sys.stdout.buffer.write(result.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
