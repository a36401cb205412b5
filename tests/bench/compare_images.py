"""Benchmark: what comparing one pair of large PNG outputs costs the worker, in time and peak memory.

    .venv/bin/python tests/bench/compare_images.py                   # 7000x7000 and 4000x4000 pairs
    .venv/bin/python tests/bench/compare_images.py --sizes 7000,2000

For each size N (--sizes) and each case, a child process compares a one-cell notebook whose stored output is one
N x N PNG with a fresh output that is another N x N PNG, through ``compare_notebooks`` with the default tolerance
and the default pixel budget of ``repository.runners.compare.limits``; it prints the seconds spent in the call and
its peak RSS (ru_maxrss) before and after the call. Cases:
  reencoded  the same solid colour encoded with another zlib level: bytes differ, pixels are equal
  changed    another solid colour: every pixel differs (the report then carries a difference picture)
The PNGs are written row by row with zlib (a solid colour compresses about a thousandfold), so making them costs
little. Figures only, no assertions.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from repository.runners.compare import Tolerance, compare_notebooks
    stored, fresh = json.load(open(sys.argv[1]))
    def notebook(data):
        output = {"output_type": "display_data", "metadata": {}, "data": {"image/png": data}}
        return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
            {"cell_type": "code", "id": "a", "metadata": {}, "source": "plot()", "execution_count": 1,
             "outputs": [output]}]}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = compare_notebooks(notebook(stored), notebook(fresh), tolerance=Tolerance())
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    output = report["cells"][0]["outputs"][0]
    print(json.dumps({"seconds": seconds, "rss_before_mb": before / 1024, "rss_after_mb": after / 1024,
                      "verdict": report["verdict"], "status": output["status"], "note": output.get("note", "")}))
""")


def solid_png(side: int, rgb: tuple[int, int, int], level: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    row = b"\x00" + bytes(rgb) * side
    compressor = zlib.compressobj(level)
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def measure(side: int, case: str, scratch: Path) -> dict:
    stored = solid_png(side, (30, 110, 180), level=9)
    fresh = solid_png(side, (30, 110, 180), level=1) if case == "reencoded" else solid_png(side, (200, 40, 40), 9)
    pair = scratch / f"pair-{side}-{case}.json"
    pair.write_text(json.dumps([base64.b64encode(stored).decode(), base64.b64encode(fresh).decode()]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(pair)], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True)
    return {"side": side, "case": case, "png_bytes": (len(stored), len(fresh)), **json.loads(done.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="7000,4000", help="comma-separated sides in pixels")
    arguments = parser.parse_args()
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"nbarchive-bench-images-{os.getpid()}"
    scratch.mkdir()
    try:
        for side in (int(value) for value in arguments.sizes.split(",")):
            for case in ("reencoded", "changed"):
                figures = measure(side, case, scratch)
                print(f"{side}x{side} {case:9}: {figures['seconds']:6.2f} s, "
                      f"peak RSS {figures['rss_after_mb']:7.1f} MB (before the call {figures['rss_before_mb']:.1f} "
                      f"MB), status {figures['status']}, verdict {figures['verdict']}; {figures['note'][:90]}")
    finally:
        for path in scratch.iterdir():
            path.unlink()
        scratch.rmdir()


if __name__ == "__main__":
    main()
