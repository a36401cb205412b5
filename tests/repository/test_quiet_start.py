"""`make run` starts quietly: e-mails go to files under var/, and the package metadata builds without warnings."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from license_expression import get_spdx_licensing

ROOT = Path(__file__).resolve().parents[2]


def test_the_embedded_default_writes_emails_to_files_under_var_not_to_the_console(tmp_path):
    base = {key: value for key, value in os.environ.items() if key not in ("EMAIL_BACKEND", "EMAIL_FILE_PATH")}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.core.mail import send_mail; "
                               "send_mail('Review requested', 'A draft waits for you.', None, ['m@example.org'])"],
        cwd=ROOT, env={**base, "DJANGO_SETTINGS_MODULE": "repository.settings", "NBARCHIVE_VAR_DIR": str(tmp_path)},
        capture_output=True, text=True, check=True)

    assert "Review requested" not in result.stdout + result.stderr
    [message] = (tmp_path / "mail").iterdir()
    assert "Subject: Review requested" in message.read_text()


def test_the_licence_is_an_spdx_expression_that_setuptools_takes_without_a_deprecation_warning():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    license = project["project"]["license"]
    assert isinstance(license, str), "a table here makes setuptools warn on every install"
    assert not get_spdx_licensing().validate(license).errors
    # PEP 639 strings are understood from setuptools 77 on; an older one would refuse them.
    assert "setuptools>=77" in project["build-system"]["requires"]
