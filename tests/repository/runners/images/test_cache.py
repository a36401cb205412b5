"""The image cache: one pull per digest across processes, shared by later runs, LRU eviction that spares images
in use. Pulls are counted from the cache's own pull log, not by replacing skopeo."""

import os
import stat
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.images, pytest.mark.sandbox]
ROOT = Path(__file__).resolve().parents[4]
MB = 1024 * 1024


def _pulls(cache, ref: str) -> int:
    return sum(1 for entry in cache.pull_log() if entry["event"] == "pull" and entry["reference"] == ref)


def _worker(cache, ref: str, *, hold_seconds: float = 0, ready_file: Path | None = None) -> subprocess.Popen:
    """Another worker process using the same cache folder: it acquires `ref`, holds it, prints the rootfs."""
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from repository.runners.images import ImageCache, PullLimits, RegistryAccess
        cache = ImageCache(Path({str(cache.root)!r}),
                           access=RegistryAccess(frozenset({set(cache.access.insecure_registries)!r})),
                           limits=PullLimits({cache.limits.max_bytes}, {cache.limits.timeout_seconds}),
                           cap_bytes={cache.cap_bytes})
        with cache.use({ref!r}) as image:
            if {str(ready_file) if ready_file else ''!r}:
                Path({str(ready_file)!r}).write_text("held")
            time.sleep({hold_seconds})
            print(image.rootfs)
    """)
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_workers_asking_at_once_pull_the_image_once(image_cache_factory, minimal_image_ref):
    cache = image_cache_factory()
    workers = [_worker(cache, minimal_image_ref) for _ in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    assert outputs[0][0] == outputs[1][0] and outputs[0][0].strip().endswith("/rootfs")
    assert _pulls(cache, minimal_image_ref) == 1


def test_a_later_run_uses_the_cached_image_without_pulling(image_cache_factory, tiny_image_ref):
    ref = tiny_image_ref("shared", {"/etc/shared": b"x"})
    cache = image_cache_factory()
    first = cache.pull(ref)

    with cache.use(ref) as again:
        assert again.rootfs == first.rootfs and (again.rootfs / "etc/shared").read_bytes() == b"x"
    assert _pulls(cache, ref) == 1 and [image.digest for image in cache.list_images()] == [first.digest]


def test_eviction_keeps_the_cache_under_its_cap_least_recently_used_first_and_spares_images_in_use(
        image_cache_factory, tiny_image_ref):
    refs = {name: tiny_image_ref(f"lru-{name}", {f"/data/{name}": os.urandom(MB)}) for name in "abcd"}
    cache = image_cache_factory(cap_gb=2.5 * MB / 1024**3)  # room for two images of ~1 MB

    lease_a = cache.acquire(refs["a"])       # a run is using a
    cache.pull(refs["b"])
    time.sleep(0.02)
    cache.pull(refs["c"])                    # three images: b, the least recently used one not in use, goes
    held = {image.reference for image in cache.list_images()}
    assert held == {refs["a"], refs["c"]}

    time.sleep(0.05)                         # file times are as coarse as the kernel's clock tick
    lease_a.release()                        # a's run ends now, after c was last used
    time.sleep(0.02)
    cache.pull(refs["d"])                    # c is now the least recently used
    assert {image.reference for image in cache.list_images()} == {refs["a"], refs["d"]}
    assert sum(image.disk_bytes for image in cache.list_images()) <= cache.cap_bytes
    evictions = [entry["reference"] for entry in cache.pull_log() if entry["event"] == "evict"]
    assert evictions == [refs["b"], refs["c"]]


def test_an_image_another_worker_process_is_using_is_never_evicted(image_cache_factory, tiny_image_ref, tmp_path):
    ref = tiny_image_ref("in-use", {"/etc/in-use": b"x"})
    idle = tiny_image_ref("idle", {"/etc/idle": b"y"})
    cache = image_cache_factory()
    cache.pull(idle)
    ready = tmp_path / "ready"
    worker = _worker(cache, ref, hold_seconds=30, ready_file=ready)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read()
            time.sleep(0.05)

        evicted = cache.prune(everything=True)

        assert [image.reference for image in evicted] == [idle]
        (in_use,) = cache.list_images()
        assert in_use.reference == ref and cache.in_use(in_use) and (in_use.rootfs / "etc/in-use").exists()
    finally:
        worker.kill()
        worker.communicate()
    assert [image.reference for image in cache.prune(everything=True)] == [ref]  # released when the process died


def test_an_evicted_image_is_pulled_again_when_a_run_needs_it(image_cache_factory, tiny_image_ref):
    ref = tiny_image_ref("again", {"/etc/again": b"x"})
    cache = image_cache_factory()
    cache.pull(ref)
    cache.prune(everything=True)

    with cache.use(ref) as image:
        assert (image.rootfs / "etc/again").exists()
    assert _pulls(cache, ref) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make setuid-root files and device nodes")
def test_setuid_programs_capabilities_and_devices_of_an_image_are_disarmed_on_the_host(image_cache_factory,
                                                                                      tiny_image_ref):
    def privileged(rootfs):
        (rootfs / "bin/root-shell").chmod(0o4755)
        (rootfs / "bin/group-shell").chmod(0o2755)
        os.mknod(rootfs / "bin/disk", 0o666 | stat.S_IFBLK, os.makedev(8, 0))

    ref = tiny_image_ref("privileged", {"/bin/root-shell": b"#!x", "/bin/group-shell": b"#!y"}, prepare=privileged)

    with image_cache_factory().use(ref) as image:
        modes = {name: (image.rootfs / "bin" / name).stat().st_mode for name in ("root-shell", "group-shell")}
        assert not (image.rootfs / "bin/disk").exists()
    assert all(not mode & (stat.S_ISUID | stat.S_ISGID) for mode in modes.values())
    assert all(stat.S_IMODE(mode) == 0o755 for mode in modes.values())


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can set file capabilities")
def test_file_capabilities_are_removed(tmp_path):
    from repository.runners.images.files import CAPABILITY_XATTR, disarm_and_measure

    program = tmp_path / "rootfs/usr/bin/ping"
    program.parent.mkdir(parents=True)
    program.write_bytes(b"\0" * 4096)
    # VFS_CAP_REVISION_2 with the effective flag, permitted CAP_SETUID (7)
    os.setxattr(program, CAPABILITY_XATTR, struct.pack("<IIIII", 0x02000001, 1 << 7, 0, 0, 0))
    assert CAPABILITY_XATTR in os.listxattr(program)

    size = disarm_and_measure(tmp_path / "rootfs")

    assert CAPABILITY_XATTR not in os.listxattr(program) and size >= 4096


def test_a_cached_image_whose_record_is_damaged_is_pulled_afresh(image_cache_factory, tiny_image_ref):
    ref = tiny_image_ref("damaged", {"/etc/damaged": b"x"})
    cache = image_cache_factory()
    (cache.pull(ref).path / "image.json").write_text("{")

    with cache.use(ref) as image:
        assert (image.rootfs / "etc/damaged").read_bytes() == b"x"
    assert _pulls(cache, ref) == 2
