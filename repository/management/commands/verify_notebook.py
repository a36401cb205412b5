"""python manage.py verify_notebook PATH [--data PATH[=TARGET] ...] [--image REF]
       [--reference TARGET=SHA256[:SIZE] ...] [--references FILE.json] [--json]

Re-executes a notebook file the way a submitted version is verified: its data references staged and checked by
the same staging (checksums, sizes, the SSRF-guarded fetcher and its cache for url/doi/archive_query, our storage
for repository_file), then the same sandbox and the same comparison, and prints the verdict with the per-cell
report. `--image` is the pinned image a submission must name (registry/name@sha256:<64 hex>), recorded in the
report. A data reference whose bytes are given locally names the --data file at its target: `--reference
TARGET=SHA256[:SIZE]`, or an entry without `kind` in `--references`, a JSON list shaped like the API's
data_references ({target_path, sha256, size?, kind?, identifier?, query?}; entries with a kind are validated and
staged exactly as the API's). A reference that does not verify fails the run as a submission's staging would:
verdict execution_failed, with the same message.

Exit code 0 whenever the run was carried out, whatever the verdict; non-zero, with one line, for bad input
(missing file, malformed option, an image pinned by tag) or when it could not be carried out (no sandbox here).
"""

import json
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from repository.errors import InvalidInput
from repository.models import Verdict
from repository.runners.base import RunnerGaveUp, RunnerUnavailable, get_runner
from repository.runners.cleanup import remove_tree
from repository.runners.local import SandboxUnavailable
from repository.runners.staging import (
    ReferenceSpec,
    StagingError,
    cache_dir_from_settings,
    policy_from_settings,
    stage_inputs,
)
from repository.services.drafts import data_reference_clean
from repository.services.runs import reference_spec
from repository.services.verification import (
    Verification,
    default_tolerance,
    limits_from_settings,
    notebook_verify,
)
from repository.validators import validate_container_image

REFERENCE_RE = re.compile(r"^(?P<target>[^=]+)=(?P<sha256>[0-9a-fA-F]{64})(?::(?P<size>\d+))?$")
MAX_REFERENCES = 200


class Command(BaseCommand):
    help = "Re-execute a notebook in the sandbox and compare its fresh outputs with the stored ones."

    def add_arguments(self, parser):
        parser.add_argument("path", help="The .ipynb file.")
        parser.add_argument(
            "--data", action="append", default=[], metavar="PATH[=TARGET]",
            help="A file or folder to place in the notebook's working directory, under its own name or under "
            "TARGET (relative). Repeat for several.",
        )
        parser.add_argument("--image", default="", metavar="REF",
                            help="The container image the submission pins: registry/name@sha256:<64 hex>.")
        parser.add_argument(
            "--reference", action="append", default=[], metavar="TARGET=SHA256[:SIZE]",
            help="The --data file at TARGET is a data reference with this sha256 (and size): staged and checked "
            "as a submission's. Repeat for several.",
        )
        parser.add_argument("--references", metavar="FILE.json",
                            help="Data references as the API takes them: a JSON list of {target_path, sha256, "
                            "size?, kind?, identifier?, query?}; without kind, the --data file at target_path.")
        parser.add_argument("--json", action="store_true", help="Print the whole report as JSON.")

    def handle(self, *args, path, data, image, reference, references, json: bool, **options):
        notebook = Path(path)
        if not notebook.is_file():
            raise CommandError(f"No notebook file at {path}.")
        container_image = _checked_image(image)
        data_files = _data_files(data, notebook.name)
        specs = _reference_specs(reference, references, data_files)
        run_root = Path(tempfile.mkdtemp(prefix="nbarchive-verify-"))
        try:
            run_root.chmod(0o755)
            workdir = run_root / "work"
            workdir.mkdir()
            shutil.copyfile(notebook, workdir / notebook.name)
            _place(data_files, workdir)
            verification, staged = _stage_and_verify(workdir, notebook.name, specs, container_image)
        finally:
            remove_tree(run_root)
        if json:
            self.stdout.write(_dumps({"verdict": verification.verdict, "message": verification.message,
                                      **verification.report, "container_image": container_image or None,
                                      "staged_references": staged}))
        else:
            self._print_summary(verification, container_image, staged)

    def _print_summary(self, verification: Verification, container_image: str, staged: list[dict]) -> None:
        report = verification.report
        self.stdout.write(f"verdict: {verification.verdict}")
        self.stdout.write(verification.message)
        if container_image:
            self.stdout.write(f"image: {container_image}")
        for item in staged:
            self.stdout.write(f"staged: {item['label']} at {item['target_path']}, sha256 {item['sha256']} verified")
        for note in report.get("notes", []):
            self.stdout.write(f"note: {note}")
        for cell in report.get("cells", []):
            rules = f" ({', '.join(cell['rules'])})" if cell.get("rules") else ""
            self.stdout.write(f"  cell {cell['index']:>3}: {cell['status']}{rules}")
            if cell.get("hint"):
                self.stdout.write(f"             hint: {cell['hint']}")
            for output in cell.get("outputs", []):
                if output.get("diff"):
                    for line in output["diff"].splitlines()[:20]:
                        self.stdout.write(f"             {line}")


def _place(data_files: dict[str, Path], workdir: Path) -> None:
    for target, source in data_files.items():
        try:
            (workdir / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, workdir / target)
        except OSError as exc:
            raise CommandError(f"--data: {source} cannot be placed at {target} ({exc.strerror or exc}).") from None


def _stage_and_verify(workdir: Path, notebook_path: str, specs: list[ReferenceSpec],
                      container_image: str) -> tuple[Verification, list[dict]]:
    """Staging, then the run, as services/runs.py does them for a submitted version."""
    try:
        staged = _stage(workdir, specs) if specs else []
    except StagingError as exc:
        return Verification(Verdict.EXECUTION_FAILED, str(exc)), []
    try:
        verification = notebook_verify(
            workdir=workdir, notebook_path=notebook_path, runner=get_runner(_runner_name(container_image)),
            tolerance=default_tolerance(), limits=limits_from_settings(), container_image=container_image,
        )
    except (SandboxUnavailable, RunnerUnavailable, RunnerGaveUp) as exc:
        # The machine's problem (no sandbox, registry unreachable, digest refused), not the notebook's: one line.
        raise CommandError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return verification, staged


def _runner_name(container_image: str) -> str:
    """The configured runner, except that the image runner needs an image: without --image the notebook runs in
    this server's kernel environment, as RUNNER=local would (the report says which ran)."""
    if settings.RUNNER == "image" and not container_image:
        return "local"
    return settings.RUNNER


def _stage(workdir: Path, specs: list[ReferenceSpec]) -> list[dict]:
    cache_dir = cache_dir_from_settings()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"The staging cache {cache_dir} cannot be created: {exc.strerror or exc}.") from None
    return stage_inputs(workdir=workdir, files=[], references=specs, cache_dir=cache_dir,
                        policy=policy_from_settings())


# --- checking the options -----------------------------------------------------------------------------------------


def _checked_image(image: str) -> str:
    if not image:
        return ""
    try:
        validate_container_image(image)
    except ValidationError as exc:
        raise CommandError(f"--image {image}: {' '.join(exc.messages)}") from None
    return image.strip()


def _relative_target(text: str, option: str) -> str:
    parts = PurePosixPath(text).parts
    if not text or text.startswith("/") or "\\" in text or any(part in ("..", ".") for part in parts):
        raise CommandError(f"{option}: the target must be a relative path inside the working directory.")
    return str(PurePosixPath(*parts))


def _data_files(items: list[str], notebook_name: str) -> dict[str, Path]:
    """Every file the --data options place, by its target path (folders are walked; links are followed)."""
    files: dict[str, Path] = {}
    for item in items:
        source_text, _, target_text = item.partition("=")
        source = Path(source_text)
        if not source.exists():
            raise CommandError(f"--data {item}: {source_text} does not exist.")
        target = _relative_target(target_text or source.resolve().name, f"--data {item}")
        found = ([(target, source)] if source.is_file() else
                 [(f"{target}/{path.relative_to(source).as_posix()}", path)
                  for path in sorted(source.rglob("*")) if path.is_file()])
        for file_target, path in found:
            if file_target == notebook_name or file_target in files:
                raise CommandError(f"--data {item}: {file_target} is given twice.")
            files[file_target] = path
    return files


class _Entry(NamedTuple):
    option: str  # names the entry in messages
    fields: dict
    origin: str = ""  # --references FILE, for the API's field names
    index: int | None = None  # position in that file


def _reference_specs(arguments: list[str], references_file: str | None,
                     data_files: dict[str, Path]) -> list[ReferenceSpec]:
    """The data references, numbered as a version's would be: the --reference options, then --references.
    A reference to a local file takes that file out of `data_files`: staging places it, after checking it."""
    entries = [_Entry(f"--reference {argument}", _parse_reference_argument(argument)) for argument in arguments]
    if references_file:
        # Errors name an entry as the API would: --references FILE: data_references[2].sha256: ...
        entries += [_Entry(f"--references {references_file}: data_references[{index}]", fields,
                           f"--references {references_file}", index)
                    for index, fields in enumerate(_load_references(references_file))]
    if len(entries) > MAX_REFERENCES:
        raise CommandError(f"At most {MAX_REFERENCES} data references, as for a version.")
    specs: list[ReferenceSpec] = []
    for position, entry in enumerate(entries, start=1):
        if entry.fields.get("kind") is None:
            spec = _local_spec(position, entry.option, entry.fields, data_files)
        else:
            spec = _archive_spec(position, entry, data_files)
        if any(spec.target_path == other.target_path for other in specs):
            raise CommandError(f"{entry.option}: another data reference is already staged at {spec.target_path}.")
        specs.append(spec)
    return specs


def _parse_reference_argument(argument: str) -> dict:
    match = REFERENCE_RE.match(argument.strip())
    if not match:
        raise CommandError(f"--reference {argument}: write TARGET=SHA256 or TARGET=SHA256:SIZE (64 hex digits, "
                           "the size in bytes).")
    size = match["size"]
    return {"target_path": match["target"], "sha256": match["sha256"], "size": int(size) if size else None}


def _load_references(path: str) -> list[dict]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"--references {path}: it cannot be read ({exc.strerror or exc}).") from None
    except ValueError as exc:
        raise CommandError(_one_line(f"--references {path}: it is not valid JSON ({exc}).")) from None
    if not isinstance(document, list) or not all(isinstance(entry, dict) for entry in document):
        raise CommandError(f"--references {path}: give a JSON list of objects, as the API's data_references.")
    return document


LOCAL_FIELDS = {"target_path", "sha256", "size", "kind", "title"}


def _local_spec(position: int, option: str, entry: dict, data_files: dict[str, Path]) -> ReferenceSpec:
    unknown = sorted(set(entry) - LOCAL_FIELDS)
    if unknown:
        raise CommandError(f"{option}: {', '.join(unknown)} without a kind; a reference without kind is the "
                           "--data file at its target_path.")
    target = _relative_target(str(entry.get("target_path") or ""), option)
    sha256, size = entry.get("sha256"), entry.get("size")
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise CommandError(f"{option}: sha256 must be 64 hexadecimal digits.")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise CommandError(f"{option}: size must be a whole number of bytes.")
    source = data_files.pop(target, None)
    if source is None:
        raise CommandError(f"{option}: no --data file is placed at {target}; give it with --data PATH={target}.")
    return ReferenceSpec(label=f"data reference {position} ({target})", kind="local_file", identifier=str(source),
                         target_path=target, sha256=sha256.lower(),
                         size=source.stat().st_size if size is None else size, local_path=source.resolve())


def _archive_spec(position: int, entry: _Entry, data_files: dict[str, Path]) -> ReferenceSpec:
    """A reference with a kind (from --references): validated and resolved as the API does, staged as a run
    does."""
    try:
        row = data_reference_clean(entry.fields, index=entry.index or 0)
        spec = reference_spec(position, row)
    except InvalidInput as exc:
        field, messages = next(iter(exc.field_errors.items()))
        raise CommandError(_one_line(f"{entry.origin}: {field}: {' '.join(messages)}")) from None
    except DatabaseError as exc:
        raise CommandError(_one_line(f"{entry.option}: a repository_file reference needs the archive's database "
                                     f"({exc}).")) from None
    if spec.target_path in data_files:
        raise CommandError(f"{entry.option}: {spec.target_path} is also given with --data; a reference with a kind "
                           "is obtained from its source, not from --data.")
    return spec


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _dumps(value) -> str:
    return json.dumps(value, indent=2, default=str)
