"""Whether notebooks can run in the bubblewrap sandbox here, for the tests that need it to skip with a reason."""

import shutil
from pathlib import Path

import pytest
from django.conf import settings

SANDBOX_READY = shutil.which("bwrap") is not None and Path(settings.RUNNER_KERNEL_PYTHON).exists()
needs_sandbox = pytest.mark.skipif(not SANDBOX_READY, reason="bubblewrap or the kernel environment is missing")
