"""Settings of direct, resumable uploads (repository/services/uploads.py); part of the settings package."""

from ._env import env

# --- Direct uploads (repository/services/uploads.py) ------------------------------------------------------
# The bytes of all versions of one record, counted once per distinct file, plus the uploads under way.
MAX_RECORD_SIZE = env.int("NBARCHIVE_MAX_RECORD_SIZE", default=100 * 1024**3)
# An upload not completed this many days after it began is aborted (its parts deleted) by the garbage collector.
UPLOAD_EXPIRY_DAYS = env.float("UPLOAD_EXPIRY_DAYS", default=4.0)
# Parts are this many bytes (the last one shorter), or larger when a file would otherwise need more than
# UPLOAD_MAX_PARTS of them. S3 wants at least 5 MiB for every part but the last. A small part loses little when a
# transfer is cut off (only the parts in flight are sent again).
UPLOAD_PART_SIZE = env.int("UPLOAD_PART_SIZE", default=8 * 1024**2)
# S3's own limit of parts per multipart upload.
UPLOAD_MAX_PARTS = 10_000
# Parts the draft page's upload widget sends at once, all files together: enough to fill a connection whose
# round trips are slow, few enough that a part in flight does not wait long for its share.
UPLOAD_BROWSER_PARALLEL_PARTS = env.int("UPLOAD_BROWSER_PARALLEL_PARTS", default=4)
