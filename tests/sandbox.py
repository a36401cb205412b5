"""Whether notebooks can run in the bubblewrap sandbox here, for the tests that need it to skip with a reason."""

import shutil
from pathlib import Path

import pytest
from django.conf import settings

SANDBOX_READY = shutil.which("bwrap") is not None and Path(settings.RUNNER_KERNEL_PYTHON).exists()
needs_sandbox = pytest.mark.skipif(not SANDBOX_READY, reason="bubblewrap or the kernel environment is missing")


def kernel_python_or_skip_module() -> Path:
    """The kernel environment's Python, for a module of sandbox tests; skips the whole module, with the reason,
    where bubblewrap or the kernel environment is missing."""
    kernel_python = Path(settings.RUNNER_KERNEL_PYTHON)
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: the sandbox tests cannot run", allow_module_level=True)
    if not kernel_python.exists():
        pytest.skip(f"no kernel environment at {kernel_python}: run `make kernel-env`", allow_module_level=True)
    return kernel_python
