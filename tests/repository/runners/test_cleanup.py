"""remove_tree: what a run leaves is removed whatever its modes, as the worker that is not root sees them.

The permission checks that make read-only folders survive do not apply to root, and the tests run as root here, so
the removal runs in a child process under `setpriv --reuid=65534 --regid=65534 --clear-groups`, on a tree owned by
that user, the way a worker without privileges meets it. The same child with `shutil.rmtree(ignore_errors=True)`,
the removal used before, leaves the tree behind: that is what proves these tests exercise the permission path.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from repository.runners import cleanup
from repository.runners.cleanup import remove_tree

ROOT = Path(__file__).resolve().parents[3]
NOBODY = 65534
REMOVE_TREE = "from repository.runners.cleanup import remove_tree; print(json.dumps(remove_tree(sys.argv[1])))"
RMTREE = "import shutil; shutil.rmtree(sys.argv[1], ignore_errors=True); print(json.dumps([]))"

as_root = os.geteuid() == 0
needs_setpriv = pytest.mark.skipif(as_root and not shutil.which("setpriv"),
                                   reason="running as root without setpriv: cannot test as an unprivileged user")


def unprivileged(code: str, path: Path) -> tuple[list[str], str]:
    """Run `code` as an unprivileged user (nobody, when we are root); return its JSON answer and its stderr."""
    prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if as_root else []
    script = f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); {code}"
    done = subprocess.run([*prefix, sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                          timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


@pytest.fixture
def base():
    """A folder the unprivileged user owns (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="nbarchive-cleanup-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)  # as root, whatever the modes
    assert not path.exists()


def left_by_a_run(run: Path, depth: int = 0) -> None:
    """Staged inputs made read-only, and folders the notebook made read-only or closed: 0o500 holding a 0o400 file
    and a 0o000 folder (with a file in it), under a chain of `depth` nested folders."""
    folder = run / "work" / "data"
    for level in range(depth):
        folder = folder / f"level{level}"
    folder.mkdir(parents=True)
    (folder / "input.csv").write_text("a,b\n1,2\n")
    sealed = folder / "sealed"
    sealed.mkdir()
    (sealed / "result.bin").write_bytes(b"\0" * 4096)
    (folder / "input.csv").chmod(0o400)
    sealed.chmod(0o000)
    folder.chmod(0o500)
    (run / "work").chmod(0o555)


def give_to_nobody(path: Path) -> None:
    if not as_root:
        return
    for folder, folders, files in os.walk(path):
        for name in [*folders, *files]:
            os.lchown(os.path.join(folder, name), NOBODY, NOBODY)
    os.chown(path, NOBODY, NOBODY)


@needs_setpriv
@pytest.mark.parametrize("depth", [0, 3 * cleanup.MAX_OPEN_DEPTH + 5])
def test_a_run_folder_with_read_only_and_closed_folders_is_removed_completely(base, depth):
    left_by_a_run(base / "run", depth)
    give_to_nobody(base)

    failures, _ = unprivileged(REMOVE_TREE, base / "run")

    assert failures == []
    assert not (base / "run").exists()


@needs_setpriv
def test_the_removal_used_before_leaves_the_same_folder_behind(base):
    left_by_a_run(base / "run")
    give_to_nobody(base)

    unprivileged(RMTREE, base / "run")

    assert (base / "run" / "work" / "data" / "input.csv").exists()


@needs_setpriv
@pytest.mark.skipif(not as_root, reason="needs a folder of another user, which only root can make")
def test_what_cannot_be_removed_is_reported_and_logged(base):
    left_by_a_run(base / "run")
    foreign = base / "run" / "foreign"
    foreign.mkdir()
    (foreign / "kept.txt").write_text("root's")
    give_to_nobody(base)
    os.lchown(foreign, 0, 0)
    os.lchown(foreign / "kept.txt", 0, 0)
    foreign.chmod(0o555)

    failures, stderr = unprivileged(REMOVE_TREE, base / "run")

    assert failures == [f"{foreign}/kept.txt: Permission denied", f"{foreign}: Directory not empty"]
    assert f"Could not remove {foreign}/kept.txt: Permission denied" in stderr
    assert (foreign / "kept.txt").exists() and not (base / "run" / "work").exists()


def test_links_are_removed_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    outside.chmod(0o500)
    run = tmp_path / "run"
    (run / "work").mkdir(parents=True)
    (run / "work" / "to-folder").symlink_to(outside)
    (run / "work" / "to-file").symlink_to(outside / "precious.txt")

    assert remove_tree(run) == []

    assert not run.exists()
    assert (outside / "precious.txt").read_text() == "keep me"
    assert outside.stat().st_mode & 0o777 == 0o500


def test_a_path_that_is_gone_or_a_file_is_fine(tmp_path):
    assert remove_tree(tmp_path / "never-made") == []
    (tmp_path / "single").write_text("x")
    assert remove_tree(tmp_path / "single") == []
    assert not (tmp_path / "single").exists()


PRUNE_IMAGE_CACHE = (
    "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'repository.settings'); from pathlib import Path; "
    "from repository.runners.images import ImageCache, PullLimits, RegistryAccess; "
    "cache = ImageCache(Path(sys.argv[1]), access=RegistryAccess(frozenset()), cap_bytes=0, "
    "limits=PullLimits(max_bytes=1, timeout_seconds=1)); cache.prune(everything=True); print(json.dumps([]))"
)


@needs_setpriv
def test_the_image_cache_removes_an_evicted_image_whatever_modes_its_folders_have(base):
    """An image may ship read-only and closed folders (0o000); the image cache removed its trash with a weaker copy
    of remove_tree that left such folders behind for a worker that is not root."""
    cache = base / "cache"
    for name in ("images", "locks", "tmp", "tools"):
        (cache / name).mkdir(parents=True)
    left_by_a_run(cache / "trash" / "evicted-image" / "rootfs")
    give_to_nobody(base)

    unprivileged(PRUNE_IMAGE_CACHE, cache)

    assert list((cache / "trash").iterdir()) == []
