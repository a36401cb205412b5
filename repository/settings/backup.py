"""Settings of the backup tier (repository/backup); part of the settings package."""

from ._env import env

# --- Backup tier (repository/backup) ------------------------------------------------------------------
# The target is the "backup" storage alias above: the bucket BACKUP_S3_BUCKET (same endpoint and keys as S3_*),
# else the directory VAR_DIR/backup. Volumes are tar files of at most this many bytes (a single file larger
# than that gets a volume of its own).
BACKUP_VOLUME_MAX_BYTES = env.int("BACKUP_VOLUME_MAX_BYTES", default=10 * 1024**3)
# Key prefix inside the backup bucket (e.g. "nbarchive/"); lets several archives share one bucket.
BACKUP_S3_PREFIX = env.str("BACKUP_S3_PREFIX", default="")
# Storage class of volumes (catalog and manifests stay STANDARD so a restore can read them at once).
BACKUP_S3_STORAGE_CLASS = env.str("BACKUP_S3_STORAGE_CLASS", default="DEEP_ARCHIVE")
# Object lock retention of volumes, used when the bucket was created with object lock; 0 turns it off.
BACKUP_S3_OBJECT_LOCK_DAYS = env.int("BACKUP_S3_OBJECT_LOCK_DAYS", default=3653)
BACKUP_S3_OBJECT_LOCK_MODE = env.str("BACKUP_S3_OBJECT_LOCK_MODE", default="COMPLIANCE")  # or GOVERNANCE
# Reading a volume in an archive storage class first asks S3 to restore it for this many days, at this tier.
BACKUP_S3_RESTORE_DAYS = env.int("BACKUP_S3_RESTORE_DAYS", default=7)
BACKUP_S3_RESTORE_TIER = env.str("BACKUP_S3_RESTORE_TIER", default="Bulk")  # Bulk | Standard | Expedited
# An S3 volume is assembled in a temporary file here before its (multipart) upload; empty: the system temp dir.
# It needs BACKUP_VOLUME_MAX_BYTES free.
BACKUP_SPOOL_DIR = env.str("BACKUP_SPOOL_DIR", default="")
# Celery beat runs the backup nightly (02:00 UTC) and then a fixity check of FIXITY_SAMPLE_PERCENT of the blobs
# (least recently checked first, so a few percent a night cover everything within weeks).
FIXITY_SAMPLE_PERCENT = env.float("FIXITY_SAMPLE_PERCENT", default=5.0)
