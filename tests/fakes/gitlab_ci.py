"""The part of the fake GitLab that reads `.gitlab-ci.yml`: which jobs a pipeline gets, in which stages, with
which image, script, variables, timeout and artifacts.

It reads the part of GitLab's CI language that nbarchive's CI file uses (repository/runners/gitlab.py,
`ci_config`), checked as GitLab checks it:
- top level: `stages` (GitLab's default: build, test, deploy, inside .pre and .post), `variables`, and the jobs
  (every other key; keys starting with "." are hidden jobs, which run nothing);
- jobs: `script` (required), `stage`, `image` (a string or {name: ...}), `variables`, `timeout`, `artifacts`
  (`paths`, `when`, `name`, `expire_in`); `interruptible` and `retry` are accepted and change nothing here.
A key GitLab does not know is an error, with GitLab's message. A key GitLab knows but the fake does not
implement (rules, before_script, needs, ...) is an error too, saying so, rather than being silently ignored:
whatever the fake runs, GitLab runs the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

DEFAULT_STAGES = ["build", "test", "deploy"]
# Keys of GitLab's CI language that the fake leaves out: refused, so no CI file runs differently here.
GLOBAL_NOT_IMPLEMENTED = {"default", "workflow", "include", "image", "services", "before_script", "after_script",
                          "cache", "types", "spec"}
JOB_NOT_IMPLEMENTED = {"after_script", "allow_failure", "before_script", "cache", "coverage", "dast_configuration",
                       "dependencies", "environment", "except", "extends", "hooks", "id_tokens", "identity", "inherit",
                       "manual_confirmation", "needs", "only", "pages", "parallel", "publish", "release",
                       "resource_group", "rules", "run", "secrets", "services", "start_in", "tags", "trigger", "when"}
JOB_KEYS = {"script", "stage", "image", "variables", "timeout", "artifacts", "interruptible", "retry"}
ARTIFACT_KEYS = {"paths", "when", "name", "expire_in"}
ARTIFACT_WHEN = {"on_success", "on_failure", "always"}
VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class CiConfigError(Exception):
    """The CI file is not valid; `errors` are GitLab-like messages."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class PlannedJob:
    name: str
    stage: str
    stage_index: int
    script: list[str]
    image: str = ""
    variables: dict[str, str] = field(default_factory=dict)  # the CI file's, global and the job's
    timeout_seconds: float | None = None  # None: the project's default
    artifact_paths: list[str] = field(default_factory=list)
    artifact_when: str = "on_success"


@dataclass
class PipelinePlan:
    stages: list[str]
    jobs: list[PlannedJob]


_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60, "minute": 60,
          "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
          "days": 86400, "w": 604800, "week": 604800, "weeks": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)?\s*(?:and\s+)?", re.IGNORECASE)


def parse_duration(value: Any) -> float | None:
    """GitLab's durations (chronic_duration): "1h 30m", "90 minutes", "2 hours", "3600" (seconds), 30."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower().replace(",", " ")
    total = 0.0
    position = 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if not match or match.end() == position:
            return None
        number, unit = float(match.group(1)), match.group(2)
        if unit is None:
            total += number
        elif unit in _UNITS:
            total += number * _UNITS[unit]
        else:
            return None
        position = match.end()
    return total or None


def plan_pipeline(text: str) -> PipelinePlan:
    """The jobs of a pipeline for this CI file; CiConfigError for an invalid file."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CiConfigError([f"(<unknown>): {str(error).splitlines()[0] if str(error) else 'invalid YAML'}"]) from None
    if not isinstance(config, dict):
        raise CiConfigError(["Invalid configuration format"])
    stages = config.get("stages", DEFAULT_STAGES)
    if not isinstance(stages, list) or not all(isinstance(stage, str) for stage in stages):
        raise CiConfigError(["stages config should be an array of strings"])
    all_stages = [".pre", *[stage for stage in stages if stage not in (".pre", ".post")], ".post"]
    global_variables = _variables(config.get("variables"), "variables")
    errors: list[str] = []
    jobs: list[PlannedJob] = []
    for name, body in config.items():
        if name in ("stages", "variables") or str(name).startswith("."):
            continue
        if name in GLOBAL_NOT_IMPLEMENTED:
            errors.append(f"{name}: the fake GitLab does not implement this keyword")
            continue
        try:
            jobs.append(_plan_job(str(name), body, global_variables, all_stages))
        except CiConfigError as error:
            errors.extend(error.errors)
    if errors:
        raise CiConfigError(errors)
    if not jobs:
        raise CiConfigError(["jobs config should contain at least one visible job"])
    used = sorted({job.stage_index for job in jobs})
    return PipelinePlan(stages=[all_stages[index] for index in used], jobs=jobs)


def _plan_job(name: str, body: Any, global_variables: dict[str, str], all_stages: list[str]) -> PlannedJob:
    where = f"jobs:{name}"
    if not isinstance(body, dict):
        raise CiConfigError([f"{where} config should be a hash"])
    unknown = set(body) - JOB_KEYS - JOB_NOT_IMPLEMENTED
    if unknown:
        raise CiConfigError([f"{where} config contains unknown keys: {', '.join(sorted(unknown))}"])
    left_out = set(body) & JOB_NOT_IMPLEMENTED
    if left_out:
        raise CiConfigError([f"{where}: the fake GitLab does not implement {', '.join(sorted(left_out))}"])
    if "script" not in body:
        raise CiConfigError([f"{where} config should implement the script:, run:, or trigger: keyword"])
    stage = body.get("stage", "test")
    if stage not in all_stages:
        raise CiConfigError([(f"{name} job: chosen stage {stage} does not exist; available stages are "
                              f"{', '.join(all_stages)}")])
    timeout_seconds = None
    if "timeout" in body:
        timeout_seconds = parse_duration(body["timeout"])
        if timeout_seconds is None:
            raise CiConfigError([f"{where} timeout config should be a duration"])
    artifacts = body.get("artifacts") or {}
    if not isinstance(artifacts, dict):
        raise CiConfigError([f"{where}:artifacts config should be a hash"])
    unknown = set(artifacts) - ARTIFACT_KEYS
    if unknown:
        raise CiConfigError([f"{where}:artifacts: the fake GitLab does not implement {', '.join(sorted(unknown))}"])
    paths = artifacts.get("paths", [])
    if not isinstance(paths, list) or not all(isinstance(item, str) for item in paths):
        raise CiConfigError([f"{where}:artifacts paths should be an array of strings"])
    if any(char in path for path in paths for char in "*?["):
        raise CiConfigError([f"{where}:artifacts: the fake GitLab takes paths literally, without globs"])
    artifact_when = artifacts.get("when", "on_success")
    if artifact_when not in ARTIFACT_WHEN:
        raise CiConfigError([f"{where}:artifacts when should be on_success, on_failure or always"])
    return PlannedJob(
        name=name, stage=stage, stage_index=all_stages.index(stage), script=_commands(body["script"], where),
        image=_image(body.get("image"), where), variables={**global_variables, **_variables(
            body.get("variables"), f"{where}:variables")},
        timeout_seconds=timeout_seconds, artifact_paths=list(paths), artifact_when=artifact_when,
    )


def _commands(value: Any, where: str) -> list[str]:
    """A script: a string, or a list of strings (numbers are strings too)."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, (str, int, float)) and not isinstance(item, bool) for item in items):
        message = f"{where}:script config should be a string or a nested array of strings up to 10 levels deep"
        raise CiConfigError([message])
    return [str(item) for item in items]


def _variables(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CiConfigError([f"{where} config should be a hash of key value pairs"])
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not VARIABLE_NAME.match(key):
            raise CiConfigError([f"{where} config uses invalid variable name {key!r}"])
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise CiConfigError([f"{where} config should be a hash of key value pairs"])
        out[key] = str(item)
    return out


def _image(value: Any, where: str) -> str:
    name = value.get("name") if isinstance(value, dict) else value
    if value is not None and not isinstance(name, str):
        raise CiConfigError([f"{where}:image config should be a hash or a string"])
    if name and "$" in name:
        raise CiConfigError([f"{where}:image: the fake GitLab does not expand variables in image names"])
    return name or ""
