"""Did the sandbox start? Decided by bwrap's own report, never by what the run printed.

The collector (kernel_collector.py) hands bwrap a pipe for `--json-status-fd` and puts what bwrap said in the
status's "bwrap": whether it cloned the sandbox's first process (`child-pid`), the exit code of the command it
started (`exit-code`, reported only once its set-up finished and the kernel's Python was really executed), and
whether it ended by itself rather than killed by the collector. Only bwrap holds that pipe; the notebook, its
image and whatever they print cannot write to it. So:
- bwrap ended by itself without an exit code: the sandbox never ran the kernel, nothing of the notebook (or of its
  image) ran, and the worker cannot run notebooks: the operator's problem (SandboxUnavailable: retried, then
  `error`). Without a `child-pid` either, bwrap never made the sandbox, or never ran at all: setpriv or env in front
  of it failed (a missing bwrap, a uid setpriv may not take), or the kernel refused its namespaces.
- an exit code: the kernel's Python ran and ended before it was ready. Whatever it printed (even lines that look
  like bwrap's), that is the notebook's or its image's doing: a verdict.
Only the operator's message is taken from the log (the last line of bwrap, setpriv or env), and only in the first
case, when nothing of the notebook can have written to it.
"""


# What the tools in front of the kernel write when they fail: bwrap, and setpriv and env before it.
SANDBOX_TOOL_PREFIXES = ("bwrap: ", "setpriv: ", "env: ")


def sandbox_never_started(status: dict) -> bool:
    """bwrap (or setpriv/env before it) ended by itself without ever executing the kernel's Python."""
    bwrap = status.get("bwrap")
    return (status.get("outcome") == "kernel_start_failed" and isinstance(bwrap, dict)
            and bwrap.get("ended_by_itself") is True and bwrap.get("exit_code") is None)


def sandbox_start_failure(status: dict, logs: str) -> str | None:
    """The operator's message when the sandbox itself could not start, else None.

    Nothing of the notebook has run then; the worker cannot run notebooks at all: user namespaces refused to a
    non-root worker, a folder the sandbox uid cannot reach (the kernel environment or the app installed under a
    0700 folder), a tool missing or too old. That must end as a run error, retried, never as the notebook's
    `execution_failed`."""
    if not sandbox_never_started(status):
        return None
    said = [line.strip() for line in logs.splitlines() if line.startswith(SANDBOX_TOOL_PREFIXES)]
    if said:
        what = said[-1][:300]
    elif status["bwrap"].get("child_pid"):
        what = f"bwrap exited with code {status.get('sandbox_returncode')} while setting the sandbox up"
    else:
        what = f"the sandbox command exited with code {status.get('sandbox_returncode')} before bwrap made the sandbox"
    return (f"The sandbox could not start on this worker ({what}). {_sandbox_hint(what)} Nothing is known about "
            "the notebook; the run is tried again later.")


def kernel_start_message(status: dict, logs: str) -> str | None:
    """The author's message for a kernel that bwrap started and that ended before it was ready, else None."""
    bwrap = status.get("bwrap")
    if (status.get("outcome") != "kernel_start_failed" or status.get("message") or not isinstance(bwrap, dict)
            or bwrap.get("exit_code") is None):
        return None
    last_line = next((line.strip() for line in reversed(logs.splitlines()) if line.strip()), "")
    message = f"the kernel exited with code {bwrap['exit_code']} before it was ready"
    return message + (f" (its last line: {last_line[:300]})" if last_line else "")


def _sandbox_hint(line: str) -> str:
    if "namespace" in line:
        return ("The worker's user may not create user namespaces: allow them (sysctl "
                "kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0, or AppArmor's "
                "kernel.apparmor_restrict_unprivileged_userns=0), or run the worker as root.")
    if "Permission denied" in line or "Can't find source path" in line:
        return ("The sandbox uid cannot reach a folder it needs (the kernel environment, the image cache or the "
                "temporary folder): every folder on the way must be searchable by others (chmod o+x), or move it; "
                "`manage.py check --deploy` names the folder.")
    if "Unknown option" in line:
        return "This bwrap is too old for the sandbox: install bubblewrap 0.5 or later."
    return "See `manage.py check --deploy` for what the sandbox lacks on this worker."
