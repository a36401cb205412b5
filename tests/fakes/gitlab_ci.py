"""The part of the fake GitLab that reads `.gitlab-ci.yml`: which jobs a pipeline gets, in which stages, with
which image, script, variables, timeout and artifacts. A subset of GitLab's CI language, checked as strictly as
GitLab checks it, so a CI file the fake accepts is one GitLab accepts too (unknown keys are errors, as in GitLab):

- `stages` (default build, test, deploy, with .pre and .post around them), `variables`, `default`, the legacy
  top-level `image`/`before_script`/`after_script`, `workflow:rules`; `include`, `services` and `cache` are
  accepted and ignored;
- jobs: every top-level key that is not a global keyword and does not start with "." (hidden jobs serve
  `extends` and `!reference`); `script` (required), `before_script`, `after_script`, `image` (string or
  {name: ...}), `stage`, `variables`, `timeout`, `artifacts` (paths, exclude, untracked, when, name, expire_in),
  `when`, `allow_failure`, `rules` (if / exists / changes / when / allow_failure / variables), `only`/`except`
  (refs keywords and names), `tags`, `dependencies`, `extends`, `!reference`; other known keywords are accepted
  and ignored (needs, retry, interruptible, environment, ...);
- rules expressions: `$VAR`, `"string"`, `/regex/`, `null`, `==`, `!=`, `=~`, `!~`, `&&`, `||`, parentheses.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import yaml

DEFAULT_STAGES = ["build", "test", "deploy"]
GLOBAL_KEYS = {"stages", "variables", "default", "workflow", "include", "image", "services", "before_script",
               "after_script", "cache", "types", "spec"}
DEFAULT_KEYS = {"after_script", "artifacts", "before_script", "cache", "hooks", "id_tokens", "image", "interruptible",
                "retry", "services", "tags", "timeout"}
JOB_KEYS = {"after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage", "dast_configuration",
            "dependencies", "environment", "except", "extends", "hooks", "id_tokens", "identity", "image", "inherit",
            "interruptible", "manual_confirmation", "needs", "only", "pages", "parallel", "publish", "release",
            "resource_group", "retry", "rules", "run", "script", "secrets", "services", "stage", "start_in", "tags",
            "timeout", "trigger", "variables", "when"}
ARTIFACT_KEYS = {"paths", "exclude", "expire_in", "expose_as", "name", "public", "access", "reports", "untracked",
                 "when"}
RULE_KEYS = {"if", "changes", "exists", "when", "allow_failure", "variables", "needs", "start_in", "interruptible"}
JOB_WHEN = {"on_success", "on_failure", "always", "manual", "delayed", "never"}
ARTIFACT_WHEN = {"on_success", "on_failure", "always"}
VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
DEFAULT_TIMEOUT_SECONDS = 3600.0  # a project's default job timeout


class CiConfigError(Exception):
    """The CI file is not valid; `errors` are GitLab-like messages."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


class PipelineFiltered(Exception):
    """workflow:rules or the jobs' rules leave nothing to run for this trigger."""


@dataclass
class PlannedJob:
    name: str
    stage: str
    stage_index: int
    script: list[str]
    before_script: list[str] = field(default_factory=list)
    after_script: list[str] = field(default_factory=list)
    image: str = ""
    variables: dict[str, str] = field(default_factory=dict)  # global + job + rule variables (not predefined)
    timeout_seconds: float | None = None  # None: the project's default
    artifact_paths: list[str] = field(default_factory=list)
    artifact_exclude: list[str] = field(default_factory=list)
    artifact_untracked: bool = False
    artifact_when: str = "on_success"
    artifact_name: str = "artifacts"
    artifact_expire_in: str | None = None
    when: str = "on_success"
    allow_failure: bool = False
    tags: list[str] = field(default_factory=list)
    dependencies: list[str] | None = None  # None: all jobs of earlier stages


@dataclass
class PipelinePlan:
    stages: list[str]
    jobs: list[PlannedJob]


# --- YAML with !reference -------------------------------------------------------------------------------------------


class _Reference:
    def __init__(self, path: list[Any]):
        self.path = path


class _Loader(yaml.SafeLoader):
    pass


def _construct_reference(loader: _Loader, node: yaml.Node) -> _Reference:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(None, None, "!reference needs a sequence", node.start_mark)
    return _Reference(loader.construct_sequence(node, deep=True))


_Loader.add_constructor("!reference", _construct_reference)


def load_config(text: str) -> dict:
    try:
        document = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise CiConfigError([f"(<unknown>): {str(error).splitlines()[0] if str(error) else 'invalid YAML'}"]) from None
    if not isinstance(document, dict):
        raise CiConfigError(["Invalid configuration format"])
    return _resolve_references(document, document, depth=0)


def _resolve_references(value: Any, root: dict, depth: int) -> Any:
    if depth > 10:
        raise CiConfigError(["!reference tags are nested too deeply"])
    if isinstance(value, _Reference):
        target: Any = root
        for key in value.path:
            if not isinstance(target, dict) or key not in target:
                raise CiConfigError([f"!reference [{', '.join(map(str, value.path))}] could not be found"])
            target = target[key]
        return _resolve_references(copy.deepcopy(target), root, depth + 1)
    if isinstance(value, dict):
        return {key: _resolve_references(item, root, depth) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_references(item, root, depth) for item in value]
    return value


# --- durations and small values ------------------------------------------------------------------------------------

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


def _commands(value: Any, where: str) -> list[str]:
    """A script: a string, or a list of strings/numbers and nested lists (from anchors and !reference)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            if isinstance(item, list):
                out.extend(_commands(item, where))
            elif isinstance(item, (str, int, float)) and not isinstance(item, bool):
                out.append(str(item))
            else:
                raise CiConfigError([(f"{where} config should be a string or a nested array of strings up to 10 "
                                      "levels deep")])
        return out
    raise CiConfigError([f"{where} config should be a string or a nested array of strings up to 10 levels deep"])


def _variables(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CiConfigError([f"{where} config should be a hash of key value pairs"])
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not VARIABLE_NAME.match(key):
            raise CiConfigError([f"{where} config uses invalid variable name {key!r}"])
        if isinstance(item, dict):
            item = item.get("value", "")
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise CiConfigError([f"{where} config should be a hash of key value pairs, value can be a hash"])
        out[key] = str(item)
    return out


def _image(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return value["name"]
    raise CiConfigError([f"{where}:image config should be a hash or a string"])


def expand(value: str, variables: dict[str, str]) -> str:
    """$VAR and ${VAR} expansion as the runner does it for keywords such as image (unknown names: empty)."""
    return re.sub(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))",
                  lambda m: variables.get(m.group(1) or m.group(2), ""), value)


# --- rules expressions ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:
    (?P<var>\$\{[A-Za-z0-9_]+\}|\$[A-Za-z0-9_]+) |
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*') |
    (?P<regex>/(?:[^/\\]|\\.)*/[a-z]*) |
    (?P<op>==|!=|=~|!~|&&|\|\||\(|\)) |
    (?P<null>null\b)
)""", re.VERBOSE)


def evaluate(expression: str, variables: dict[str, str]) -> bool:
    tokens = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise CiConfigError([f"invalid expression syntax: {expression}"])
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    parser = _Expression(tokens, variables, expression)
    result = parser.parse_or()
    if parser.index != len(tokens):
        raise CiConfigError([f"invalid expression syntax: {expression}"])
    return bool(result)


class _Expression:
    def __init__(self, tokens, variables, source):
        self.tokens, self.variables, self.source, self.index = tokens, variables, source, 0

    def _peek(self):
        return self.tokens[self.index] if self.index < len(self.tokens) else (None, None)

    def _take(self):
        token = self._peek()
        if token[0] is None:
            raise CiConfigError([f"invalid expression syntax: {self.source}"])
        self.index += 1
        return token

    def parse_or(self) -> bool:
        result = self.parse_and()
        while self._peek() == ("op", "||"):
            self.index += 1
            right = self.parse_and()
            result = result or right
        return result

    def parse_and(self) -> bool:
        result = self.parse_primary()
        while self._peek() == ("op", "&&"):
            self.index += 1
            right = self.parse_primary()
            result = result and right
        return result

    def parse_primary(self) -> bool:
        if self._peek() == ("op", "("):
            self.index += 1
            result = self.parse_or()
            if self._take() != ("op", ")"):
                raise CiConfigError([f"invalid expression syntax: {self.source}"])
            return result
        left = self._operand()
        kind, value = self._peek()
        if kind == "op" and value in ("==", "!=", "=~", "!~"):
            self.index += 1
            right = self._operand()
            if value in ("==", "!="):
                equal = left[1] == right[1]
                return equal if value == "==" else not equal
            pattern = right[1]
            if right[0] == "var" and pattern is not None:
                pattern = pattern if pattern.startswith("/") else None
            if pattern is None or left[1] is None:
                return value == "!~"
            body, _, flags = pattern[1:].rpartition("/")
            found = re.search(body, left[1], re.IGNORECASE if "i" in flags else 0) is not None
            return found if value == "=~" else not found
        return left[1] is not None and left[1] != ""

    def _operand(self):
        kind, value = self._take()
        if kind == "var":
            name = value.strip("${}")
            return ("var", self.variables.get(name))
        if kind == "str":
            return ("str", re.sub(r"\\(.)", r"\1", value[1:-1]))
        if kind == "regex":
            return ("regex", value)
        if kind == "null":
            return ("null", None)
        raise CiConfigError([f"invalid expression syntax: {self.source}"])


# --- the plan ------------------------------------------------------------------------------------------------------


def _deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_extends(name: str, config: dict, seen: tuple[str, ...] = ()) -> dict:
    body = config[name]
    extends = body.get("extends")
    if extends is None:
        return body
    if len(seen) > 10 or name in seen:
        raise CiConfigError([f"{name}: circular dependency detected in `extends`"])
    parents = [extends] if isinstance(extends, str) else extends
    if not isinstance(parents, list) or not all(isinstance(parent, str) for parent in parents):
        raise CiConfigError([f"jobs:{name}:extends config should be an array of strings or a string"])
    merged: dict = {}
    for parent in parents:
        if parent not in config or not isinstance(config[parent], dict):
            raise CiConfigError([f"{name}: unknown keys in `extends` ({parent})"])
        merged = _deep_merge(merged, _resolve_extends(parent, config, (*seen, name)))
    result = _deep_merge(merged, {key: value for key, value in body.items() if key != "extends"})
    return result


def _rules_decision(rules: Any, where: str, variables: dict[str, str],
                    files: set[str]) -> dict | None:
    """The first matching rule (as a dict with when, allow_failure, variables), or None when none matches."""
    if not isinstance(rules, list):
        raise CiConfigError([f"{where}:rules config should be an array of hashes"])
    for rule in rules:
        if not isinstance(rule, dict):
            raise CiConfigError([f"{where}:rules:rule config should be a hash"])
        unknown = set(rule) - RULE_KEYS
        if unknown:
            raise CiConfigError([f"{where}:rules:rule config contains unknown keys: {', '.join(sorted(unknown))}"])
        if "if" in rule and not evaluate(str(rule["if"]), variables):
            continue
        if "exists" in rule:
            patterns = rule["exists"]
            if isinstance(patterns, dict):
                patterns = patterns.get("paths", [])
            patterns = [patterns] if isinstance(patterns, str) else list(patterns or [])
            if not any(fnmatchcase(path, pattern) for pattern in patterns for path in files):
                continue
        # `changes` holds for API pipelines and new refs in GitLab; the fake treats it as true.
        return rule
    return None


def _only_except_match(spec: Any, ref: str, is_tag: bool, source: str) -> bool:
    refs = spec.get("refs", []) if isinstance(spec, dict) else spec
    refs = [refs] if isinstance(refs, str) else list(refs or [])
    keywords = {"branches": not is_tag, "tags": is_tag, "api": source == "api", "pushes": source == "push",
                "web": source == "web", "triggers": source == "trigger", "schedules": source == "schedule",
                "merge_requests": source == "merge_request_event", "external": source == "external",
                "pipelines": source == "pipeline", "chat": source == "chat"}
    for item in refs:
        item = str(item)
        if item in keywords:
            if keywords[item]:
                return True
        elif item.startswith("/") and item.rstrip("i").endswith("/") and len(item) > 1:
            body, _, flags = item[1:].rpartition("/")
            if re.search(body, ref, re.IGNORECASE if "i" in flags else 0):
                return True
        elif item == ref:
            return True
    return False


def plan_pipeline(text: str, *, files: set[str], variables: dict[str, str], ref: str, is_tag: bool,
                  source: str) -> PipelinePlan:
    """Read the CI file for one pipeline. `variables`: predefined and pipeline variables (for rules).

    Raises CiConfigError for an invalid file and PipelineFiltered when nothing would run.
    """
    config = load_config(text)
    stages = config.get("stages", config.get("types", DEFAULT_STAGES))
    if not isinstance(stages, list) or not all(isinstance(stage, str) for stage in stages):
        raise CiConfigError(["stages config should be an array of strings"])
    all_stages = [".pre", *[stage for stage in stages if stage not in (".pre", ".post")], ".post"]
    default = config.get("default") or {}
    if not isinstance(default, dict):
        raise CiConfigError(["default config should be a hash"])
    unknown = set(default) - DEFAULT_KEYS
    if unknown:
        raise CiConfigError([f"default config contains unknown keys: {', '.join(sorted(unknown))}"])
    global_variables = _variables(config.get("variables"), "variables")

    workflow = config.get("workflow")
    if workflow is not None:
        if not isinstance(workflow, dict):
            raise CiConfigError(["workflow config should be a hash"])
        if "rules" in workflow:
            rule = _rules_decision(workflow["rules"], "workflow", {**global_variables, **variables}, files)
            if rule is None or rule.get("when") == "never":
                raise PipelineFiltered("Pipeline filtered out by workflow rules.")
            global_variables.update(_variables(rule.get("variables"), "workflow:rules:variables"))

    job_names = [key for key in config if isinstance(key, str) and key not in GLOBAL_KEYS and not key.startswith(".")]
    errors: list[str] = []
    jobs: list[PlannedJob] = []
    for name in job_names:
        if not isinstance(config[name], dict):
            errors.append(f"jobs:{name} config should be a hash")
            continue
        try:
            job = _plan_job(name, config, default, global_variables, variables, all_stages, files, ref, is_tag,
                            source)
        except CiConfigError as error:
            errors.extend(error.errors)
            continue
        if job is not None:
            jobs.append(job)
    if errors:
        raise CiConfigError(errors)
    if not job_names:
        raise CiConfigError(["jobs config should contain at least one visible job"])
    if not jobs:
        raise PipelineFiltered("Pipeline will not run for the selected trigger. The rules configuration prevented "
                               "any jobs from being added to the pipeline.")
    used = sorted({job.stage_index for job in jobs})
    return PipelinePlan(stages=[all_stages[index] for index in used], jobs=jobs)


def _plan_job(name, config, default, global_variables, pipeline_variables, all_stages, files, ref, is_tag,
              source) -> PlannedJob | None:
    body = _resolve_extends(name, config)
    where = f"jobs:{name}"
    unknown = set(body) - JOB_KEYS
    if unknown:
        raise CiConfigError([f"{where} config contains unknown keys: {', '.join(sorted(unknown))}"])
    if "trigger" in body:
        raise CiConfigError([f"{where}: trigger jobs are not supported by the fake GitLab"])
    if "script" not in body:
        raise CiConfigError([f"{where} config should implement the script:, run:, or trigger: keyword"])
    stage = body.get("stage", "test")
    if stage not in all_stages:
        raise CiConfigError([(f"{name} job: chosen stage {stage} does not exist; available stages are "
                              f"{', '.join(all_stages)}")])
    job_variables = {**global_variables, **_variables(body.get("variables"), f"{where}:variables")}
    when = body.get("when", "on_success")
    allow_failure = body.get("allow_failure", when == "manual")
    if "rules" in body:
        if "only" in body or "except" in body:
            raise CiConfigError([f"{where} config key may not be used with `rules`: only, except"])
        rule = _rules_decision(body["rules"], where, {**job_variables, **pipeline_variables}, files)
        if rule is None:
            return None
        when = rule.get("when", when)
        if "allow_failure" in rule:
            allow_failure = rule["allow_failure"]
        job_variables.update(_variables(rule.get("variables"), f"{where}:rules:variables"))
    else:
        if "only" in body and not _only_except_match(body["only"], ref, is_tag, source):
            return None
        if "except" in body and _only_except_match(body["except"], ref, is_tag, source):
            return None
    if when not in JOB_WHEN:
        raise CiConfigError([f"{where} when should be one of: {', '.join(sorted(JOB_WHEN))}"])
    if when == "never":
        return None
    if isinstance(allow_failure, dict):  # allow_failure: exit_codes
        allow_failure = True
    if not isinstance(allow_failure, bool):
        raise CiConfigError([f"{where} allow_failure should be a boolean value"])
    timeout = body.get("timeout", default.get("timeout"))
    timeout_seconds = None
    if timeout is not None:
        timeout_seconds = parse_duration(timeout)
        if timeout_seconds is None:
            raise CiConfigError([f"{where} timeout config should be a duration"])
    image = _image(body.get("image", default.get("image", config.get("image"))), where) or ""
    artifacts = body.get("artifacts", default.get("artifacts")) or {}
    if not isinstance(artifacts, dict):
        raise CiConfigError([f"{where}:artifacts config should be a hash"])
    unknown = set(artifacts) - ARTIFACT_KEYS
    if unknown:
        raise CiConfigError([f"{where}:artifacts config contains unknown keys: {', '.join(sorted(unknown))}"])
    paths = artifacts.get("paths", [])
    exclude = artifacts.get("exclude", [])
    for key, value in (("paths", paths), ("exclude", exclude)):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise CiConfigError([f"{where}:artifacts {key} should be an array of strings"])
    artifact_when = artifacts.get("when", "on_success")
    if artifact_when not in ARTIFACT_WHEN:
        raise CiConfigError([f"{where}:artifacts when should be on_success, on_failure or always"])
    tags = body.get("tags", default.get("tags", [])) or []
    if not isinstance(tags, list):
        raise CiConfigError([f"{where} tags should be an array of strings"])
    dependencies = body.get("dependencies")
    if dependencies is not None and not isinstance(dependencies, list):
        raise CiConfigError([f"{where} dependencies should be an array of strings"])
    before = body.get("before_script", default.get("before_script", config.get("before_script")))
    after = body.get("after_script", default.get("after_script", config.get("after_script")))
    return PlannedJob(
        name=name, stage=stage, stage_index=all_stages.index(stage),
        script=_commands(body["script"], f"{where}:script"),
        before_script=_commands(before, f"{where}:before_script") if before is not None else [],
        after_script=_commands(after, f"{where}:after_script") if after is not None else [],
        image=image, variables=job_variables, timeout_seconds=timeout_seconds,
        artifact_paths=list(paths), artifact_exclude=list(exclude),
        artifact_untracked=bool(artifacts.get("untracked", False)), artifact_when=artifact_when,
        artifact_name=str(artifacts.get("name", "artifacts")), artifact_expire_in=artifacts.get("expire_in"),
        when=when, allow_failure=allow_failure, tags=[str(tag) for tag in tags],
        dependencies=[str(item) for item in dependencies] if dependencies is not None else None,
    )
