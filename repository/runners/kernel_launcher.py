"""Starts the kernel inside the sandbox in place of `python -m ipykernel_launcher`; run as a script by the
kernel's Python (any version with ipykernel: the image runner supports them all).

`python -m ipykernel_launcher` in the notebook's folder looks that module up with the folder first on sys.path,
so an uploaded `ipykernel_launcher.py` (or `zmq.py`, `ipykernel/`, ...) ran instead of the kernel, before anything
of ours. Run as a script, Python puts this file's folder first instead (the run's read-only folder, never the
notebook's); it is taken off here before ipykernel is imported. `-P`/PYTHONSAFEPATH would do the same on
Python 3.11 and later only, and IPython 9.7+ then also leaves the working folder off sys.path for the cells.
Once the kernel is up, IPython's InteractiveShellApp.init_path puts '' (the working folder) back on sys.path, as
in Jupyter, so cells import the helper modules their authors ship next to the notebook.
"""

import os
import sys

if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]

    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
