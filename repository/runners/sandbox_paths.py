"""What the author reads of a sandboxed run (its log, the failure message) names paths as the sandbox sees them.

The log is the collector's stderr: the kernel's own output (already sandbox paths), but also bwrap's errors and
the collector's messages and warnings, which name the host's paths: the run's private folder, the bind sources
(the staged work folder, an unpacked image's layers, the kernel environment), the worker's Python and the
application's checkout. Those tell an attacker how the server is laid out. `as_seen_inside` rewrites each bind
source to where the sandbox mounts it (the run's bwrap command says where) and each other host path the worker
knows of to a placeholder.
"""

import re
import sys
from collections import Counter
from pathlib import Path

BIND_OPTIONS = ("--bind", "--ro-bind", "--bind-try", "--ro-bind-try", "--dev-bind", "--dev-bind-try")
APP_DIR = Path(__file__).resolve().parents[2]
# bwrap names the host as /oldroot and the sandbox being built as /newroot in its own errors.
BWRAP_ROOTS = re.compile(r"/(?:old|new)root(?=/)")


def bind_mounts(command: list[str]) -> list[tuple[str, str]]:
    """(host path, sandbox path) of every bind in a bwrap command line."""
    return [(command[i + 1], command[i + 2]) for i, argument in enumerate(command[:-2]) if argument in BIND_OPTIONS]


def as_seen_inside(text: str, *, command: list[str], private_dir: Path) -> str:
    if not text:
        return text
    text = BWRAP_ROOTS.sub("", text)
    binds = bind_mounts(command)
    replacements = {source: target for source, target in binds if source != target}
    # An image's root filesystem is bound entry by entry (<rootfs>/usr at /usr, <rootfs>/etc at /etc...): its
    # folder itself is the sandbox's "/".
    roots = Counter(source[:-len(target)] for source, target in binds
                    if target != "/" and source.endswith(target) and len(source) > len(target))
    replacements.update({root: "/" for root, count in roots.items() if count >= 3})
    replacements.update({str(private_dir): "<run folder>", str(APP_DIR): "<nbarchive>",
                         sys.prefix: "<worker python>", sys.base_prefix: "<worker python>"})
    # Longest first, so a bind inside the private folder is named by its mount and not as "<run folder>/...".
    for host_path in sorted(replacements, key=len, reverse=True):
        if len(host_path) < 2:
            continue  # never rewrite "/" itself
        target = replacements[host_path]
        pattern = re.escape(host_path.rstrip("/")) + r"(?![\w.-])"
        if target == "/":
            text = re.sub(pattern + "/", "/", text)  # "<rootfs>/opt/x" is "/opt/x", not "//opt/x"
        text = re.sub(pattern, lambda _match, target=target: target, text)
    return text
