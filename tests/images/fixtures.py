"""Pytest fixtures for tests that need real container images (a plugin: `-p tests.images.fixtures` in pyproject).

- `image_registry`: docker-registry on a free loopback port for the session, storage in a temporary folder.
- `minimal_image_ref`, `scientific_image_ref`: the images of tests/images/build.py (built once per machine, cached
  by recipe) pushed to it, as references pinned by digest; `minimal_nbclient_image_ref` and
  `scientific_nbclient_image_ref` the same with python3-nbclient, for the GitLab path (its collector runs in the
  image).
- `private_registry`, `private_image_ref`, `registry_auth_file`: a second registry that requires htpasswd
  authentication, the minimal image in it, and a docker-style auth file with its credentials.
- `tiny_image_ref(name, files)`: a one-layer image of a few files pushed to `image_registry` (well under a second).
- `image_cache_factory(**limits)`: an empty ImageCache in a folder the sandbox uid can reach, for one test;
  `shared_image_cache`: one for the session, so that tests reading the same image pull it once.
Tests using them skip, saying what is missing, on a machine without skopeo, umoci, mmdebstrap, docker-registry,
bubblewrap or bcrypt.
"""

import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

TOOLS = ("skopeo", "umoci", "docker-registry", "bwrap")


def _skip_without(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian packages skopeo umoci docker-registry mmdebstrap "
                    "bubblewrap); .ci/run installs them")


def _reachable_folder(prefix: str) -> Path:
    # pytest's tmp_path is 0700: a root worker's sandbox uid could not reach an image unpacked under it.
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


def _remove(folder: Path) -> None:
    from repository.runners.cleanup import remove_tree

    remove_tree(folder)


@pytest.fixture(scope="session")
def image_registry(tmp_path_factory):
    _skip_without(*TOOLS)
    from tests.images.registry import LocalRegistry

    registry = LocalRegistry.start(tmp_path_factory.mktemp("registry"))
    yield registry
    registry.stop()


def _built_and_pushed(registry, name: str) -> str:
    _skip_without("mmdebstrap", "umoci")
    from tests.images.build import build_image

    return registry.push(build_image(name), f"nbarchive-tests/{name}")


@pytest.fixture(scope="session")
def minimal_image_ref(image_registry) -> str:
    return _built_and_pushed(image_registry, "minimal")


@pytest.fixture(scope="session")
def scientific_image_ref(image_registry) -> str:
    return _built_and_pushed(image_registry, "scientific")


@pytest.fixture(scope="session")
def minimal_nbclient_image_ref(image_registry) -> str:
    return _built_and_pushed(image_registry, "minimal-nbclient")


@pytest.fixture(scope="session")
def scientific_nbclient_image_ref(image_registry) -> str:
    return _built_and_pushed(image_registry, "scientific-nbclient")


@pytest.fixture(scope="session")
def private_registry(tmp_path_factory):
    _skip_without(*TOOLS)
    pytest.importorskip("bcrypt", reason="bcrypt makes the registry's htpasswd file (pip install -e '.[test]')")
    from tests.images.registry import LocalRegistry

    registry = LocalRegistry.start(tmp_path_factory.mktemp("private-registry"),
                                   users={"nbarchive-puller": f"pw-{secrets.token_hex(12)}"})
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def private_image_ref(private_registry) -> str:
    return _built_and_pushed(private_registry, "minimal")


@pytest.fixture(scope="session")
def registry_auth_file(private_registry, tmp_path_factory) -> Path:
    import json

    from tests.images.registry import auth_file_content

    user, password = next(iter(private_registry.users.items()))
    path = tmp_path_factory.mktemp("auth") / "auth.json"
    path.write_text(json.dumps(auth_file_content({private_registry.host: (user, password)})))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def tiny_image_ref(image_registry, tmp_path_factory):
    from tests.images.build import build_tiny_image

    folder = tmp_path_factory.mktemp("tiny-images")
    pushed: dict[str, str] = {}

    def make(name: str, files: dict[str, bytes], **options) -> str:
        if name not in pushed:
            pushed[name] = image_registry.push(build_tiny_image(folder, name, files, **options), f"tiny/{name}")
        return pushed[name]

    return make


@pytest.fixture
def image_cache_factory(image_registry):
    from repository.runners.images import ImageCache, PullLimits, RegistryAccess

    folders = []

    def make(*, max_gb: float = 20, cap_gb: float = 50, timeout: float = 600, insecure: tuple[str, ...] = (),
             auth_file: str = "", root: Path | None = None) -> ImageCache:
        if root is None:
            root = _reachable_folder("nbarchive-image-cache-")
            folders.append(root)
        access = RegistryAccess(frozenset({image_registry.host, *insecure}), auth_file)
        return ImageCache(root / "cache", access=access, cap_bytes=int(cap_gb * 1024**3),
                          limits=PullLimits(max_bytes=int(max_gb * 1024**3), timeout_seconds=timeout))

    yield make
    for folder in folders:
        _remove(folder)


@pytest.fixture(scope="session")
def shared_image_cache(image_registry):
    from repository.runners.images import ImageCache, PullLimits, RegistryAccess

    folder = _reachable_folder("nbarchive-shared-image-cache-")
    yield ImageCache(folder / "cache", access=RegistryAccess(frozenset({image_registry.host})), cap_bytes=50 * 1024**3,
                     limits=PullLimits(max_bytes=20 * 1024**3, timeout_seconds=600))
    _remove(folder)
