"""The sandbox log and failure message show paths as the sandbox sees them, never the host's layout."""

import sys
from pathlib import Path

from repository.runners.base import RunSpec
from repository.runners.local import LocalSandboxRunner
from repository.runners.sandbox import KernelView, sandbox_command
from repository.runners.sandbox_paths import APP_DIR, as_seen_inside


def local_command(tmp_path, kernel_env: Path):
    private_dir = tmp_path / "nbarchive-run-abc123"
    spec = RunSpec(workdir=tmp_path / "staged" / "work", notebook_path="analysis/nb.ipynb")
    view = LocalSandboxRunner(kernel_python=kernel_env / "bin" / "python")._view(spec.limits)
    return sandbox_command(spec, view, private_dir, 1000), private_dir, spec.workdir


def test_host_paths_in_bwrap_errors_and_collector_messages_become_sandbox_paths(tmp_path):
    kernel_env = tmp_path / "checkout" / "var" / "kernel-env"
    command, private_dir, workdir = local_command(tmp_path, kernel_env)
    log = "\n".join([
        f"bwrap: Can't bind mount /oldroot{private_dir}/startup.py on /newroot/run/nbarchive/startup.py",
        f"bwrap: Can't create file at {workdir}/analysis/out.csv: Read-only file system",
        f"bwrap: execvp {kernel_env}/bin/python: No such file or directory",
        f"{sys.prefix}/lib/python3.11/site-packages/nbclient/client.py:1: RuntimeWarning: coroutine never awaited",
        f'  File "{APP_DIR}/repository/runners/kernel_collector.py", line 90, in run',
        f"nbarchive: stopping the run: could not connect to ipc://{private_dir}/ipc/kernel-1",
    ])

    shown = as_seen_inside(log, command=command, private_dir=private_dir)

    for host_path in (str(tmp_path), sys.prefix, str(APP_DIR), "/oldroot", "/newroot"):
        assert host_path not in shown
    assert "Can't bind mount /run/nbarchive/startup.py on /run/nbarchive/startup.py" in shown
    sandbox_workdir = "/" + "work"  # where the sandbox mounts the run's folder (sandbox_command)
    assert f"Can't create file at {sandbox_workdir}/analysis/out.csv" in shown
    assert "execvp /opt/kernel-env/bin/python" in shown
    assert "ipc:///run/nbarchive/ipc/kernel-1" in shown
    assert "<worker python>/lib/python3.11/site-packages/nbclient/client.py" in shown
    assert "<nbarchive>/repository/runners/kernel_collector.py" in shown


def test_an_images_root_filesystem_is_shown_as_the_sandboxs_root(tmp_path):
    rootfs = tmp_path / "image-cache" / "sha256-abc" / "rootfs"
    private_dir = tmp_path / "nbarchive-run-def"
    root_mounts = [arg for name in ("etc", "opt", "usr") for arg in ("--ro-bind", f"{rootfs}/{name}", f"/{name}")]
    spec = RunSpec(workdir=tmp_path / "staged" / "work", notebook_path="nb.ipynb")
    command = sandbox_command(spec, KernelView(root_mounts=root_mounts, kernel_python="/usr/bin/python3"),
                              private_dir, 1000)

    shown = as_seen_inside(f"cannot open {rootfs}/opt/conda/lib/x.so; {rootfs}/srv missing", command=command,
                           private_dir=private_dir)

    assert shown == "cannot open /opt/conda/lib/x.so; /srv missing"


def test_the_local_runners_report_names_its_python_as_the_notebook_saw_it():
    from django.conf import settings

    kernel_python = Path(settings.RUNNER_KERNEL_PYTHON)

    environment = LocalSandboxRunner(kernel_python=kernel_python).environment()

    assert environment["kernel_python"] == f"/opt/kernel-env/bin/{kernel_python.name}"
