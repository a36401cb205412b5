"""The `image` runner's part of tests/bench/verify.py (`--runner image`): cold and warm, each against its baseline.

Set-up (untimed): docker-registry on a free 127.0.0.1 port, storage in a temporary folder; the `scientific` test
image (tests/images/build.py, cached per machine) pushed to it and pinned by digest; one pull into a "warm" cache.
The submitted outputs of each notebook come from the baseline below executing it once in that image.

- cold: an empty image cache each time -> the image runner's whole verification (skopeo inspect + copy by digest,
  every blob hashed, umoci unpack, inspection of the image's Python, the run, the comparison), against
  `skopeo copy docker://...@sha256:... oci:DIR` + `umoci unpack` alone into fresh folders (same image).
- warm: the image already cached -> the image runner's verification, against `jupyter nbconvert --to notebook
  --execute` with its kernel inside the same unpacked root filesystem (bwrap: the rootfs read-only, tmpfs /tmp
  and home, the work folder writable). The image has ipykernel and jupyter_client but neither nbconvert nor
  nbclient (checked and printed), so nbconvert runs on the host (the project's venv) and only the kernel runs in
  the image: the same split as the image runner (nbclient outside, kernel inside), minus its guards.

Both sides of each pair alternate within one process, so load from other work on the machine hits them alike;
the best of N is kept. Absolute seconds are noisy, the ratios are what count.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from repository.runners.cleanup import remove_tree
from repository.runners.image import ImageRunner
from repository.runners.images import (
    ImageCache,
    PullLimits,
    RegistryAccess,
    inspect_image,
    run_in_image,
    sandbox_mounts,
)
from repository.runners.sandbox import HOME, SANDBOX_ENV
from repository.services.verification import default_tolerance, limits_from_settings, notebook_verify
from tests.images.build import build_image
from tests.images.registry import LocalRegistry

IMAGE = "scientific"
# The image is Debian bookworm's Python with numpy, scipy and matplotlib: no pandas, hence no pandas notebook.
NOTEBOOKS = ("stdlib", "numpy", "matplotlib")
KERNEL_NAME = "nbarchive-bench-image"
GiB = 1024**3


def _reachable_folder(prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)  # a root worker's sandbox uid must reach what is unpacked below it
    return folder


def _cache(root: Path, registry: LocalRegistry) -> ImageCache:
    return ImageCache(root / "cache", access=RegistryAccess(frozenset({registry.host})), cap_bytes=50 * GiB,
                      limits=PullLimits(max_bytes=20 * GiB, timeout_seconds=900))


def _runner(cache: ImageCache) -> ImageRunner:
    return ImageRunner(cache_factory=lambda: cache, uid_first=settings.RUNNER_SANDBOX_UID_FIRST,
                       uid_count=settings.RUNNER_SANDBOX_UID_COUNT)


def _settle() -> None:
    """Write back what the previous step left dirty, so that it is not charged to the next one."""
    os.sync()


def time_image_runner(work: Path, runner: ImageRunner, reference: str) -> tuple[float, str]:
    _settle()
    started = time.perf_counter()
    verification = notebook_verify(workdir=work, notebook_path="nb.ipynb", runner=runner, container_image=reference,
                                   tolerance=default_tolerance(), limits=limits_from_settings())
    return time.perf_counter() - started, verification.verdict


def time_cold_runner(work: Path, registry: LocalRegistry, reference: str) -> tuple[float, float, str]:
    """The image runner's verification from an empty cache; also the pull's own seconds, from the cache's log."""
    root = _reachable_folder("bench-image-cache-cold-")
    try:
        cache = _cache(root, registry)
        seconds, verdict = time_image_runner(work, _runner(cache), reference)
        pulls = [entry for entry in cache.pull_log() if entry.get("event") == "pull"]
        return seconds, pulls[-1]["pull_seconds"] if pulls else float("nan"), verdict
    finally:
        remove_tree(root)


def time_copy_and_unpack(reference: str) -> float:
    """skopeo copy by digest + umoci unpack, nothing else, into fresh folders (removed afterwards, untimed)."""
    folder = _reachable_folder("bench-skopeo-umoci-")
    environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(folder), "TMPDIR": str(folder)}
    rootless = ["--rootless"] if os.geteuid() != 0 else []
    try:
        _settle()
        started = time.perf_counter()
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                        f"docker://{reference}", f"oci:{folder / 'layout'}:img"],
                       check=True, capture_output=True, timeout=900, env=environment)
        subprocess.run(["umoci", "unpack", *rootless, "--image", f"{folder / 'layout'}:img", str(folder / "bundle")],
                       check=True, capture_output=True, timeout=900, env=environment)
        return time.perf_counter() - started
    finally:
        remove_tree(folder)


class NbconvertInImage:
    """`jupyter nbconvert --to notebook --execute` (host venv) with a kernelspec that starts the kernel inside the
    unpacked image under plain bwrap: rootfs read-only, fresh /proc /dev, tmpfs /tmp and home, the work folder and
    the runtime folder (connection file) writable, the image's PATH and the sandbox's environment variables. The
    network namespace is shared so that nbconvert reaches the kernel over TCP on loopback, as it does by default."""

    def __init__(self, rootfs: Path, kernel_python: str, environment: dict[str, str]):
        self.folder = Path(tempfile.mkdtemp(prefix="bench-nbconvert-"))
        self.runtime = self.folder / "runtime"
        self.runtime.mkdir()
        limits = limits_from_settings()
        self.rootfs_mounts = sandbox_mounts(rootfs, shm_mb=limits.shm_mb, tmp_mb=limits.tmpfs_mb)
        self.kernel_python = kernel_python
        self.environment = environment
        self.jupyter = Path(sys.executable).with_name("jupyter")

    def _write_kernelspec(self, work: Path) -> None:
        argv = ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", *self.rootfs_mounts, "--dir", HOME,
                "--bind", str(self.runtime), str(self.runtime), "--bind", str(work), str(work),
                "--remount-ro", "/", "--chdir", str(work), "--clearenv"]
        for key, value in self.environment.items():
            argv += ["--setenv", key, value]
        argv += [self.kernel_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        spec = self.folder / "share" / "jupyter" / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "bench: Python in the image",
                                                      "language": "python"}))

    def run(self, work: Path, *, inplace: bool = False) -> float:
        self._write_kernelspec(work)
        environment = {**os.environ, "JUPYTER_PATH": str(self.folder / "share" / "jupyter"),
                       "JUPYTER_RUNTIME_DIR": str(self.runtime), "JUPYTER_PLATFORM_DIRS": "1",
                       "TMPDIR": str(self.runtime)}  # nbclient's connection file is a temporary file
        output = ["--inplace"] if inplace else ["--output", "nbconvert-out.ipynb"]
        _settle()
        started = time.perf_counter()
        result = subprocess.run([str(self.jupyter), "nbconvert", "--to", "notebook", "--execute", "nb.ipynb",
                                 *output, f"--ExecutePreprocessor.kernel_name={KERNEL_NAME}",
                                 "--ExecutePreprocessor.timeout=600"],
                                cwd=work, check=False, capture_output=True, text=True, timeout=900, env=environment)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"nbconvert with the kernel in the image failed: {result.stderr[-2000:]}")
        return seconds


def _nbconvert_in_image(image, python: str) -> str:
    probe = ("import importlib.util as u\n"
             "print(', '.join(f'{m}: {\"yes\" if u.find_spec(m) else \"no\"}' "
             "for m in ('ipykernel', 'jupyter_client', 'nbclient', 'nbconvert')))")
    result = run_in_image(image, [python, "-c", probe], timeout=120)
    return (result.stdout.strip() or result.stderr.strip())[-200:]


def main(*, repeat: int, cold_repeat: int, cold_notebook: str, corpus: dict[str, list[str]],
         make_workdir: Callable[[str, list[str] | None], Path]) -> None:
    load_before = os.getloadavg()
    registry_folder = _reachable_folder("bench-registry-")
    registry = LocalRegistry.start(registry_folder)
    folders = [registry_folder]
    try:
        layout = build_image(IMAGE)  # built once per machine, cached by recipe
        reference = registry.push(layout, f"bench/{IMAGE}")
        warm_root = _reachable_folder("bench-image-cache-warm-")
        folders.append(warm_root)
        warm_cache = _cache(warm_root, registry)
        runner = _runner(warm_cache)
        with warm_cache.use(reference) as image:  # untimed: the warm side's pull
            inspection = inspect_image(image)
            found = _nbconvert_in_image(image, inspection.python)
            environment = {**SANDBOX_ENV, "PATH": image.config.path}
            baseline = NbconvertInImage(image.rootfs, inspection.python, environment)
            folders.append(baseline.folder)
            size = f"{image.download_bytes / 1024**2:.0f} MB download, {image.disk_bytes / 1024**3:.2f} GB unpacked"
        print(f"image {IMAGE} ({size}): {reference}", flush=True)
        print(f"  inside the image: {found} -> nbconvert runs on the host, its kernel in the image", flush=True)

        works = {}
        for name in NOTEBOOKS:
            works[name] = make_workdir(name, corpus[name])
            folders.append(works[name].parent)
            baseline.run(works[name], inplace=True)  # the submitted outputs: a real execution in the image

        # Cold: each pair alternates, and which side goes first alternates too (what one side leaves behind, such
        # as the writeback of a removed 1.2 GB tree, must not always land on the same side). Every runner run
        # starts from an empty cache in a fresh folder.
        cold_ours, cold_theirs, cold_verdict = [], [], ""
        for attempt in range(cold_repeat):
            sides = [lambda: time_cold_runner(works[cold_notebook], registry, reference),
                     lambda: (time_copy_and_unpack(reference), 0.0, "")]
            results = [side() for side in (sides if attempt % 2 == 0 else sides[::-1])]
            (seconds, pull_seconds, cold_verdict), (theirs, _, _) = results if attempt % 2 == 0 else results[::-1]
            cold_ours.append(seconds)
            cold_theirs.append(theirs)
            print(f"  cold {attempt + 1}/{cold_repeat} ({'runner' if attempt % 2 == 0 else 'skopeo+umoci'} first): "
                  f"runner {seconds:.2f} s (its pull + unpack {pull_seconds:.2f} s), skopeo+umoci {theirs:.2f} s, "
                  f"ratio {seconds / theirs:.2f}", flush=True)

        # Warm: the image stays cached (and its inspection with it), as on a worker that ran it before.
        rows = []
        for name in NOTEBOOKS:
            ours, theirs, verdict = [], [], ""
            for _ in range(repeat):
                seconds, verdict = time_image_runner(works[name], runner, reference)
                ours.append(seconds)
                theirs.append(baseline.run(works[name]))
            rows.append((name, min(ours), min(theirs), verdict))
    finally:
        registry.stop()
        for folder in folders:
            remove_tree(folder)
    load_after = os.getloadavg()

    print()
    print(f"warm: image cached; best of {repeat}")
    print(f"{'notebook':<12} {'image runner s':>15} {'nbconvert s':>12} {'ratio':>6}  verdict")
    for name, ours, theirs, verdict in rows:
        print(f"{name:<12} {ours:>15.2f} {theirs:>12.2f} {ours / theirs:>6.2f}  {verdict}")
    total_ours, total_theirs = sum(row[1] for row in rows), sum(row[2] for row in rows)
    print(f"{'total':<12} {total_ours:>15.2f} {total_theirs:>12.2f} {total_ours / total_theirs:>6.2f}  "
          "(target <= 1.1)")
    print()
    print(f"cold: empty cache, pull + unpack + run ({cold_notebook}); best of {cold_repeat}")
    print(f"{'':<12} {'image runner s':>15} {'skopeo+umoci s':>15} {'ratio':>6}  verdict")
    print(f"{cold_notebook:<12} {min(cold_ours):>15.2f} {min(cold_theirs):>15.2f} "
          f"{min(cold_ours) / min(cold_theirs):>6.2f}  {cold_verdict}  (target <= 1.3)")
    pair_ratios = sorted(ours / theirs for ours, theirs in zip(cold_ours, cold_theirs, strict=True))
    print(f"cold ratio of each alternated pair: {', '.join(f'{r:.2f}' for r in pair_ratios)}; median "
          f"{statistics.median(pair_ratios):.2f} (steadier than best-of when the load swings during a pull)")
    print()
    print(f"load average (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, after "
          f"{'/'.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} CPUs. Absolute seconds depend on other "
          "work on the machine; each ratio compares runs alternated in this one process, and is what counts.")
