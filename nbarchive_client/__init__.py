"""nbarchive's command-line client: create drafts, upload files (resumable), submit, follow, download.

It talks to the REST API only and needs nothing but `requests` and `tqdm`: it never imports Django, so
researchers install it anywhere (`pip install nbarchive` brings the `nbarchive` command).
"""

__version__ = "0.1.0"
