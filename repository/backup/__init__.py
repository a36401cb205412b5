"""The tape-style backup tier: append-only tar volumes in a separate target, a catalog, restore and fixity.

What a target holds (a directory, or a prefix in an S3 bucket), so that a restore needs nothing else:

    catalog.json                      every volume in order: name, size, sha256, its manifest's sha256
    volumes/<name>.tar                POSIX (pax) tar, never rewritten:
        README.txt                      what the volume is, in words
        blobs/<sha[:2]>/<sha256>        a file's bytes, named by their sha256; each blob is written once, ever
        bags/<record>-v<n>-<digest>/    a BagIt bag per accepted version (again when its metadata changes):
                                        data/nbarchive.json (everything a restore needs to rebuild the rows),
                                        data/datacite.json and data/datacite.xml
        manifest.jsonl                  one line per member and per (record, version, path) that uses a blob
    manifests/<name>.jsonl            the same manifest, readable without opening the volume

A Django app of its own (label `backup`; its tables kept their `repository_` names). What is where:
- the three operations, which commands and Celery tasks call (and nothing else does): `services.backup_run`
  (append what is new), `restore.backup_restore` (verify a backup and restore primary storage from it, then
  `rebuild` the database from it) and `fixity.fixity_check_run` (re-read and compare, repair primary objects);
- volumes: `volume_format` (the tar layout, the README), `volume_writer` (writing, hashing as it goes) and
  `volume_reader` (reading back front to back); `manifest` their manifests, `bags` the metadata bags, `catalog`
  the catalog of volumes;
- where they go: `targets` (a directory, or an S3 bucket, `s3_target`, through repository/integrations/s3/) and
  `primary` (reading and rewriting primary objects, verified);
- the app's parts: `models`, `admin`, `tasks` (nightly, from repository/celery.py), `management/commands`
  (backup, restore, fixity_check), `errors`, and `progress` (the commands' progress bar).
"""
