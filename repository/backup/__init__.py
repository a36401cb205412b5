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

Modules: `volumes` writes and reads tar volumes, `manifest` their manifests, `bags` the metadata bags, `catalog`
the catalog, `targets` the directory or bucket; `services.backup_run`, `restore.backup_restore` and
`fixity.fixity_check_run` are the three operations (commands and Celery tasks call only these).
"""
