"""The start-up checks that refuse a production configuration which kept development defaults.

Run as an operator would: `manage.py check` in a fresh process with the environment under test.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "k" * 50
POSTGRES = "postgres://postgres@127.0.0.1:5432/test"


def manage_check(tmp_path, *args, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "DJANGO_DEBUG")}
    environment.update(NBARCHIVE_VAR_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "manage.py", "check", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_development_defaults_pass(tmp_path):
    result = manage_check(tmp_path)

    assert result.returncode == 0, result.stderr


def test_debug_off_with_the_development_key_is_refused(tmp_path):
    result = manage_check(tmp_path, DJANGO_DEBUG="0", DATABASE_URL=POSTGRES)

    assert result.returncode != 0
    assert "nbarchive.E001" in result.stderr and "SECRET_KEY" in result.stderr


def test_debug_off_with_sqlite_is_refused(tmp_path):
    result = manage_check(tmp_path, DJANGO_DEBUG="0", SECRET_KEY=GOOD_KEY)

    assert result.returncode != 0
    assert "nbarchive.E002" in result.stderr and "nbarchive.E001" not in result.stderr


def test_deploy_check_refuses_debug_on(tmp_path):
    result = manage_check(tmp_path, "--deploy", SECRET_KEY=GOOD_KEY, DATABASE_URL=POSTGRES)

    assert result.returncode != 0
    assert "nbarchive.E003" in result.stderr


@pytest.mark.parametrize("args", [(), ("--deploy",)])
def test_a_complete_production_configuration_has_no_nbarchive_errors(tmp_path, args):
    result = manage_check(tmp_path, *args, DJANGO_DEBUG="0", SECRET_KEY=GOOD_KEY, DATABASE_URL=POSTGRES,
                          OAI_ADMIN_EMAIL="archive@university.example.edu")

    assert "nbarchive.E" not in result.stderr


@pytest.mark.parametrize("networks, refused", [("127.0.0.0/8", True), ("169.254.0.0/16", True), ("0.0.0.0/0", True),
                                               ("10.20.0.0/16", False)])
def test_staging_exemptions_for_loopback_or_metadata_are_refused_in_production(tmp_path, networks, refused):
    result = manage_check(tmp_path, DJANGO_DEBUG="0", SECRET_KEY=GOOD_KEY, DATABASE_URL=POSTGRES,
                          STAGING_ALLOWED_NETWORKS=networks)

    assert ("nbarchive.E005" in result.stderr) is refused


def test_the_s3_configuration_loads(tmp_path):
    # Settings build the S3 storage options at import: a mistake there would stop every process of a production
    # deployment, while tests that set STORAGES themselves would not notice. (Uploading through exactly that
    # configuration is test_draft_files_api.py's test_the_s3_storage_configured_from_settings_uploads.)
    result = manage_check(tmp_path, S3_BUCKET="nbarchive-files", S3_ENDPOINT_URL="http://127.0.0.1:9",
                          BACKUP_S3_BUCKET="nbarchive-backup")

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("env, error", [
    ({"DOI_PROVIDER": "crossref"}, "nbarchive.E006"),
    ({"DOI_PROVIDER": "datacite"}, "nbarchive.E007"),
    ({"DOI_PROVIDER": "datacite", "DATACITE_USERNAME": "ACME.NB", "DATACITE_PASSWORD": "x"}, None),
])
def test_a_doi_registrar_that_cannot_work_is_refused_at_start(tmp_path, env, error):
    result = manage_check(tmp_path, **env)

    if error:
        assert result.returncode != 0 and error in result.stderr
    else:
        assert result.returncode == 0, result.stderr


def test_the_example_oai_admin_address_is_refused_in_production(tmp_path):
    result = manage_check(tmp_path, DJANGO_DEBUG="0", SECRET_KEY=GOOD_KEY, DATABASE_URL=POSTGRES)

    assert result.returncode != 0 and "nbarchive.E008" in result.stderr
