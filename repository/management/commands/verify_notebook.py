"""python manage.py verify_notebook PATH [--data DIR ...] [--json]

Re-executes a notebook file in the same sandbox and with the same comparison as a submitted version, and
prints the verdict with the per-cell report. Exit code 0 whenever the run was carried out, whatever the
verdict; non-zero, with one line, when it could not be (missing file, no sandbox on this machine).
"""

import json
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from repository.runners.base import get_runner
from repository.runners.local import SandboxUnavailable
from repository.services.verification import default_tolerance, limits_from_settings, notebook_verify


class Command(BaseCommand):
    help = "Re-execute a notebook in the sandbox and compare its fresh outputs with the stored ones."

    def add_arguments(self, parser):
        parser.add_argument("path", help="The .ipynb file.")
        parser.add_argument(
            "--data", action="append", default=[], metavar="PATH[=TARGET]",
            help="A file or folder to place in the notebook's working directory, under its own name or under "
            "TARGET (relative). Repeat for several.",
        )
        parser.add_argument("--json", action="store_true", help="Print the whole report as JSON.")

    def handle(self, *args, path, data, json: bool, **options):
        notebook = Path(path)
        if not notebook.is_file():
            raise CommandError(f"No notebook file at {path}.")
        run_root = Path(tempfile.mkdtemp(prefix="nbarchive-verify-"))
        try:
            run_root.chmod(0o755)
            workdir = run_root / "work"
            workdir.mkdir()
            shutil.copyfile(notebook, workdir / notebook.name)
            for item in data:
                _place(item, workdir)
            try:
                verification = notebook_verify(
                    workdir=workdir, notebook_path=notebook.name, runner=get_runner(settings.RUNNER),
                    tolerance=default_tolerance(), limits=limits_from_settings(),
                )
            except SandboxUnavailable as exc:
                raise CommandError(str(exc)) from None
        finally:
            shutil.rmtree(run_root, ignore_errors=True)
        if json:
            self.stdout.write(_dumps({"verdict": verification.verdict, "message": verification.message,
                                      **verification.report}))
        else:
            self._print_summary(verification)

    def _print_summary(self, verification) -> None:
        report = verification.report
        self.stdout.write(f"verdict: {verification.verdict}")
        self.stdout.write(verification.message)
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


def _place(item: str, workdir: Path) -> None:
    source_text, _, target_text = item.partition("=")
    source = Path(source_text)
    if not source.exists():
        raise CommandError(f"--data {item}: {source_text} does not exist.")
    target = workdir / (target_text or source.resolve().name)
    if not target.resolve().is_relative_to(workdir.resolve()) or target.resolve() == workdir.resolve():
        raise CommandError(f"--data {item}: the target must be a relative path inside the working directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)


def _dumps(value) -> str:
    return json.dumps(value, indent=2, default=str)
