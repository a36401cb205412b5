"""Errors of the backup tier, in the project's one hierarchy (repository.errors)."""

from repository.errors import Conflict, NbarchiveError


class BackupTargetError(NbarchiveError):
    """The target cannot be reached or read (a missing directory or bucket, refused credentials)."""

    status = 503
    code = "backup_target"
    title = "The backup target is not available"


class BackupObjectMissing(BackupTargetError):
    code = "backup_object_missing"
    title = "An object is missing from the backup target"


class BackupObjectCold(BackupTargetError):
    """The object is in an archive storage class (GLACIER, DEEP_ARCHIVE) and not restored (yet)."""

    code = "backup_object_cold"
    title = "The object is in cold storage and must be restored first"


class BackupIntegrityError(NbarchiveError):
    """What the target holds does not match the catalog or the database."""

    status = 409
    code = "backup_integrity"
    title = "The backup does not match its catalog"


class BackupRunning(Conflict):
    code = "backup_running"
    title = "Another backup is running"
