"""Pulling one image by digest into a folder and unpacking it, trusting no tool's word about the bytes.

1. The manifest (or image index) is fetched raw and its sha256 compared with the pinned digest; for an index,
   this machine's platform is chosen and that manifest checked against the index entry the same way.
2. Its declared size (config + layers) is compared with IMAGE_MAX_GB before anything is downloaded.
3. `skopeo copy` writes an OCI layout; progress is the bytes present in it against the declared total.
4. The layout must name exactly the config and layers of the verified manifest, and every blob is hashed again;
   layers are inflated on the way to bound the unpacked size (a small compressed layer can hide a huge one).
5. `umoci unpack` makes bundle/rootfs; its size on disk is measured and bounded once more.
"""

import hashlib
import json
import os
import platform
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from repository.errors import ImageDigestMismatch, ImageTooLarge, ImageUnavailable
from repository.runners.images.reference import ImageReference
from repository.runners.images.tools import ImageTools

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
CHUNK = 1024 * 1024
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclass(frozen=True)
class PullLimits:
    max_bytes: int            # IMAGE_MAX_GB: download size and unpacked size, each
    timeout_seconds: float    # IMAGE_PULL_TIMEOUT_SECONDS: the registry part (manifest and blobs)

    def gigabytes(self) -> str:
        return f"IMAGE_MAX_GB={self.max_bytes / 1024**3:g}"


@dataclass(frozen=True)
class ImageConfig:
    """What the image's config says about how to run it."""

    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    user: str = ""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    architecture: str = ""
    created: str = ""

    @property
    def path(self) -> str:
        return self.env.get("PATH") or DEFAULT_PATH

    @classmethod
    def from_blob(cls, blob: dict) -> "ImageConfig":
        config = blob.get("config") or {}
        env = {}
        for item in config.get("Env") or []:
            key, _, value = str(item).partition("=")
            if key:
                env[key] = value
        return cls(env=env, working_dir=config.get("WorkingDir") or "", user=config.get("User") or "",
                   entrypoint=tuple(config.get("Entrypoint") or ()), cmd=tuple(config.get("Cmd") or ()),
                   architecture=blob.get("architecture", ""), created=blob.get("created", ""))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ImageConfig":
        return cls(**{**data, "entrypoint": tuple(data.get("entrypoint", ())), "cmd": tuple(data.get("cmd", ()))})


@dataclass(frozen=True)
class PulledImage:
    manifest_digest: str     # the platform manifest that was unpacked (the pinned digest, unless that is an index)
    config: ImageConfig
    download_bytes: int      # config + layers as declared by the verified manifest
    unpacked_bytes: int      # the layers inflated (tar streams)
    seconds: float


def pull_and_unpack(ref: ImageReference, staging: Path, *, tools: ImageTools, limits: PullLimits,
                    progress: ProgressCallback | None = None) -> PulledImage:
    """Pull `ref` into staging/layout and unpack it into staging/bundle/rootfs. Raises ImageUnavailable
    subclasses: ImageNotFound, ImageAccessDenied, ImageRegistryUnreachable, ImagePullTimeout, ImageDigestMismatch,
    ImageTooLarge, ImageToolsMissing."""
    started = time.monotonic()
    deadline = started + limits.timeout_seconds
    limit = f"IMAGE_PULL_TIMEOUT_SECONDS={limits.timeout_seconds:g}"
    manifest_digest, manifest = _verified_manifest(ref, tools=tools, deadline=deadline, limit=limit)
    descriptors = [manifest["config"], *manifest.get("layers", [])]
    total = sum(int(item.get("size", 0)) for item in descriptors)
    if total > limits.max_bytes:
        raise ImageTooLarge(f"{ref} is {_gb(total)} to download, more than {limits.gigabytes()}.")
    report = _MonotonicProgress(progress, total)
    report(0)
    layout = staging / "layout"
    tools.copy(ref, layout, deadline=deadline, limit=limit, on_tick=lambda: report(_bytes_under(layout)))
    layers = _layout_layers(layout, manifest, ref=ref)
    report(total)
    # Hashing and inflating every layer takes as long as unpacking it: do both at once (zlib and hashlib let go of
    # the GIL), stop umoci as soon as a layer is refused, and use nothing of the bundle unless all passed.
    checked = _LayerCheck(layout, layers, ref=ref, limits=limits)
    checked.start()
    bundle = staging / "bundle"
    try:
        tools.unpack(layout, bundle, deadline=time.monotonic() + limits.timeout_seconds, limit=limit,
                     on_tick=checked.raise_if_refused)
    except ImageUnavailable:
        checked.join()
        checked.raise_if_refused()
        raise
    checked.join()
    checked.raise_if_refused()
    bundle.chmod(0o755)  # the sandbox uid must reach the rootfs to bind it
    config_blob = _blob_path(layout, manifest["config"]["digest"])
    config = ImageConfig.from_blob(json.loads(config_blob.read_bytes()))
    return PulledImage(manifest_digest=manifest_digest, config=config, download_bytes=total,
                       unpacked_bytes=checked.inflated, seconds=round(time.monotonic() - started, 2))


class _MonotonicProgress:
    """Bytes in the layout only grow as a whole, but temporary files come and go: never report a step back."""

    def __init__(self, callback: ProgressCallback | None, total: int):
        self.callback = callback
        self.total = total
        self.done = 0

    def __call__(self, done: int) -> None:
        self.done = max(self.done, min(done, self.total))
        if self.callback:
            self.callback(self.done, self.total)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _verified_manifest(ref: ImageReference, *, tools: ImageTools, deadline: float, limit: str) -> tuple[str, dict]:
    raw = tools.inspect_raw(ref, digest=ref.digest, deadline=deadline, limit=limit)
    document = _checked_document(raw, ref.digest, ref)
    if document.get("mediaType") in INDEX_TYPES or "manifests" in document:
        entry = _platform_entry(document, ref)
        raw = tools.inspect_raw(ref, digest=entry["digest"], deadline=deadline, limit=limit)
        document = _checked_document(raw, entry["digest"], ref)
        digest = entry["digest"]
    else:
        digest = ref.digest
    if document.get("schemaVersion") != 2 or "config" not in document:
        raise ImageUnavailable(f"{ref} is not an OCI or Docker schema 2 image manifest; it cannot be unpacked.")
    return digest, document


def _checked_document(raw: bytes, digest: str, ref: ImageReference) -> dict:
    actual = sha256_digest(raw)
    if actual != digest:
        raise ImageDigestMismatch(f"The registry answered {ref.registry}/{ref.repository}@{digest} with a manifest "
                                  f"whose digest is {actual}: refused, nothing of it was run.")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ImageUnavailable(f"The manifest of {ref} is not JSON: {exc}") from exc


def _platform_entry(index: dict, ref: ImageReference) -> dict:
    wanted = _ARCHITECTURES.get(platform.machine(), platform.machine())
    for entry in index.get("manifests", []):
        entry_platform = entry.get("platform") or {}
        if entry_platform.get("os") == "linux" and entry_platform.get("architecture") == wanted:
            return entry
    raise ImageUnavailable(f"{ref} is an image index without a linux/{wanted} image for this worker.")


def _layout_layers(layout: Path, manifest: dict, *, ref: ImageReference) -> list[dict]:
    """Check that the layout names exactly the verified manifest's config and layers; return the layers."""
    index = json.loads((layout / "index.json").read_text())
    copied_digest = index["manifests"][0]["digest"]
    copied = json.loads(_hashed_bytes(_blob_path(layout, copied_digest), copied_digest, ref))
    expected = [manifest["config"]["digest"], *[layer["digest"] for layer in manifest.get("layers", [])]]
    found = [copied["config"]["digest"], *[layer["digest"] for layer in copied.get("layers", [])]]
    if found != expected:
        raise ImageDigestMismatch(f"skopeo wrote other blobs for {ref} than its verified manifest names.")
    _hashed_bytes(_blob_path(layout, manifest["config"]["digest"]), manifest["config"]["digest"], ref)
    return list(copied.get("layers", []))


class _LayerCheck(threading.Thread):
    """Hashes every layer blob and counts its inflated size, refusing past IMAGE_MAX_GB."""

    def __init__(self, layout: Path, layers: list[dict], *, ref: ImageReference, limits: PullLimits):
        super().__init__(daemon=True)
        self.layout, self.layers, self.ref, self.limits = layout, layers, ref, limits
        self.inflated = 0
        self.refusal: ImageUnavailable | None = None

    def run(self) -> None:
        try:
            for layer in self.layers:
                self.inflated += _hash_and_inflate(_blob_path(self.layout, layer["digest"]), layer, ref=self.ref,
                                                   budget=self.limits.max_bytes - self.inflated, limits=self.limits)
        except ImageUnavailable as exc:
            self.refusal = exc
        except OSError as exc:
            self.refusal = ImageUnavailable(f"Reading the layers of {self.ref} failed: {exc}")

    def raise_if_refused(self) -> None:
        if self.refusal is not None:
            raise self.refusal


def _hash_and_inflate(path: Path, layer: dict, *, ref: ImageReference, budget: int, limits: PullLimits) -> int:
    # Uncompressed tar counts as is; zstd is bounded by the size on disk after unpacking (no zstd in the stdlib).
    inflater = _GzipCounter() if layer.get("mediaType", "").endswith("gzip") else None
    digest = hashlib.sha256()
    inflated = 0
    with path.open("rb") as blob:
        while chunk := blob.read(CHUNK):
            digest.update(chunk)
            try:
                inflated += inflater.feed(chunk) if inflater else len(chunk)
            except zlib.error as exc:
                raise ImageUnavailable(f"A layer of {ref} ({layer['digest']}) is not valid gzip: {exc}") from exc
            if inflated > budget:
                raise ImageTooLarge(f"{ref} unpacks to more than {limits.gigabytes()}; refused, nothing kept.")
    if "sha256:" + digest.hexdigest() != layer["digest"]:
        raise ImageDigestMismatch(f"A layer of {ref} does not hash to its digest {layer['digest']}.")
    return inflated


class _GzipCounter:
    """Counts the inflated bytes of a gzip stream (of one or more members) without keeping them."""

    def __init__(self):
        self._inflater = zlib.decompressobj(wbits=47)  # 47: a gzip or zlib header

    def feed(self, data: bytes) -> int:
        produced = 0
        while data:
            produced += len(self._inflater.decompress(data, CHUNK))
            if not self._inflater.eof:
                data = self._inflater.unconsumed_tail
                continue
            data = self._inflater.unused_data
            if not data.strip(b"\0"):
                break  # padding after the last member
            self._inflater = zlib.decompressobj(wbits=47)
        return produced


def _hashed_bytes(path: Path, digest: str, ref: ImageReference) -> bytes:
    data = path.read_bytes()
    if sha256_digest(data) != digest:
        raise ImageDigestMismatch(f"The blob {digest} of {ref} does not hash to its digest.")
    return data


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise ImageUnavailable(f"Unsupported blob digest {digest!r}.")
    return layout / "blobs" / "sha256" / hexdigest


def _bytes_under(folder: Path) -> int:
    total = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass  # a temporary file renamed or removed meanwhile
    return total


def _gb(size: int) -> str:
    return f"{size / 1024**3:.2f} GB"
