"""A registry with htpasswd authentication: credentials from the auth file reach skopeo and nothing else."""

import base64
import json

import pytest

from repository.errors import ImageAccessDenied
from repository.runners.images import run_in_image
from repository.runners.images.reference import parse_reference

pytestmark = [pytest.mark.images, pytest.mark.sandbox]
SNOOP = """
import json, os
seen = {"environ": dict(os.environ), "processes": {}, "files": []}
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for part in ("environ", "cmdline"):
            try:
                seen["processes"][pid + "/" + part] = open(f"/proc/{pid}/{part}", "rb").read().decode(errors="replace")
            except OSError:
                pass
for top in ("/etc", "/root", "/tmp", "/home", "/var", "/opt"):
    for folder, _, names in os.walk(top):
        for name in names:
            path = os.path.join(folder, name)
            try:
                if os.path.isfile(path) and os.path.getsize(path) < 1_000_000:
                    seen["files"].append(open(path, "rb").read().decode(errors="replace"))
            except OSError:
                pass
print(json.dumps(seen))
"""


def test_without_credentials_the_private_registry_refuses_access(image_cache_factory, private_registry,
                                                                 private_image_ref):
    with pytest.raises(ImageAccessDenied) as refused:
        image_cache_factory(insecure=(private_registry.host,)).pull(private_image_ref)

    assert refused.value.retryable and refused.value.code == "image_access_denied"


def test_the_auth_file_pulls_the_private_image_and_the_notebook_cannot_read_the_credentials(
        image_cache_factory, private_registry, private_image_ref, registry_auth_file):
    user, password = next(iter(private_registry.users.items()))
    secrets = [password, base64.b64encode(f"{user}:{password}".encode()).decode()]
    cache = image_cache_factory(insecure=(private_registry.host,), auth_file=str(registry_auth_file))

    with cache.use(private_image_ref) as image:
        # All of what it saw (every file it could read): a secret past the usual cap must not go unnoticed.
        result = run_in_image(image, ["python3", "-c", SNOOP], timeout=120, output_limit_bytes=1024**3)

    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert len(seen["processes"]) >= 2 and seen["files"]  # it did look
    everything = result.stdout + result.stderr
    assert not any(secret in everything for secret in secrets)
    # Nor does the worker hand them to skopeo other than as the auth file's name.
    flags = cache.tools._registry_flags(parse_reference(private_image_ref), "--src-tls-verify")
    assert flags[-1] == f"--authfile={registry_auth_file}" and not any(s in " ".join(flags) for s in secrets)
    assert not any(secret in str(cache.tools.environment()) for secret in secrets)
