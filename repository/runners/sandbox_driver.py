"""Executes one notebook with nbclient in the same place as its kernel: the GitLab job's driver (gitlab_job.py).

The local runner no longer uses it: there nbclient runs outside the sandbox (kernel_collector.py), because a
driver that shares the kernel's uid and PID namespace can be stopped, overwritten and ptraced by the notebook.
It imports nothing of nbarchive or Django (they are not in the job's image). Usage:
    python sandbox_driver.py NOTEBOOK OUT_DIR CELL_TIMEOUT MAX_OUTPUT_BYTES
It writes OUT_DIR/executed.ipynb and OUT_DIR/status.json, whose "outcome" is one of: completed, cell_error,
cell_timeout, dead_kernel, output_limit, memory_error, driver_error. The caller treats both files as
untrusted: the notebook's code runs as the same user and could overwrite them.
"""

import json
import os
import sys
import time
import traceback


class OutputLimitExceeded(Exception):
    pass


def _write_status(out_dir: str, status: dict) -> None:
    with open(os.path.join(out_dir, "status.json"), "w", encoding="utf-8") as handle:
        json.dump(status, handle)


def _cleared(notebook):
    # Cells that never run must come back without outputs, not with the submitted ones.
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook


def _kernel_exit_signal(client) -> int | None:
    try:
        process = client.km.provisioner.process
        code = process.poll() if process is not None else None
    except Exception:  # noqa: BLE001 - best effort: the kernel manager may already be gone
        return None
    return -code if code is not None and code < 0 else None


def main(notebook_path: str, out_dir: str, cell_timeout: int, max_output_bytes: int) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook = _cleared(nbformat.read(notebook_path, as_version=4))
    output_bytes = 0
    current_cell = {"index": None}

    def on_cell_execute(cell, cell_index, **_):
        current_cell["index"] = cell_index

    def on_cell_executed(cell, cell_index, **_):
        nonlocal output_bytes
        output_bytes += len(json.dumps(cell.get("outputs", [])))
        print(f"cell {cell_index} done, outputs so far {output_bytes} bytes", flush=True)
        if output_bytes > max_output_bytes:
            raise OutputLimitExceeded(cell_index)

    client = NotebookClient(
        notebook,
        timeout=cell_timeout,
        startup_timeout=120,
        kernel_name="python3",
        allow_errors=False,
        record_timing=True,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(notebook_path))}},
        on_cell_execute=on_cell_execute,
        on_cell_executed=on_cell_executed,
    )
    status: dict = {"outcome": "completed"}
    started = time.monotonic()
    try:
        client.execute()
    except CellTimeoutError as exc:
        status = {"outcome": "cell_timeout", "message": str(exc)[:2000]}
    except DeadKernelError as exc:
        status = {"outcome": "dead_kernel", "message": str(exc)[:2000], "signal": _kernel_exit_signal(client)}
    except CellExecutionError as exc:
        status = {"outcome": "cell_error", "ename": exc.ename, "evalue": str(exc.evalue)[:2000]}
    except OutputLimitExceeded as exc:
        status = {"outcome": "output_limit", "cell_index": exc.args[0]}
    except MemoryError:
        status = {"outcome": "memory_error"}
    except Exception as exc:  # noqa: BLE001 - anything else is reported, never hidden
        status = {"outcome": "driver_error", "message": "".join(traceback.format_exception_only(exc))[:2000]}
    if status["outcome"] != "completed":
        status.setdefault("cell_index", current_cell["index"])
    status["seconds"] = round(time.monotonic() - started, 3)
    try:
        nbformat.write(notebook, os.path.join(out_dir, "executed.ipynb"))
    except (OSError, MemoryError) as exc:
        status = {**status, "write_error": str(exc)[:500]}
    _write_status(out_dir, status)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
