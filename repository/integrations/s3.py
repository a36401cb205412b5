"""S3 specifics that code outside the storage layer must not see: which library errors mean "storage failed"."""

from botocore.exceptions import BotoCoreError, ClientError

# Raised by django-storages' S3Storage (through boto3) when the endpoint fails or refuses; OSError covers the
# local FileSystemStorage (disk full, permissions).
STORAGE_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, OSError)
