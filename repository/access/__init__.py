"""Access to a version's files: embargoes, restricted files, access requests and grants, share links.

Metadata is public in every case; only the bytes of files (and notebook content) are closed. `policy` is the one
place that decides who reads them; every route that serves bytes or notebook content asks it.
"""
