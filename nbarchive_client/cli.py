"""The `nbarchive` command.

    nbarchive new --metadata meta.json          create a record with a draft; prints its id
    nbarchive upload RECORD PATH... [--to DIR]  upload files and folders to the draft (resumes when run again)
    nbarchive submit RECORD [--community SLUG]  submit the draft for review
    nbarchive status RECORD                     files, verification verdict, review state, DOI
    nbarchive download RECORD [--version N]     download a version's files, checking their SHA-256

Configured by NBARCHIVE_URL and NBARCHIVE_TOKEN (a personal access token), or --url and --token. Errors are one
line on standard error and a non-zero exit status.
"""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path, PurePosixPath

import requests
from tqdm import tqdm

from nbarchive_client import __version__
from nbarchive_client.api import Api, ClientError
from nbarchive_client.transfer import JOBS, FileUpload

PIECE = 1024 * 1024


def _files(paths: list[str], to: str) -> list[tuple[Path, str]]:
    """(local file, path in the version) for files and for every file under folders (kept by their name)."""
    found = []
    base = PurePosixPath(to.strip("/")) if to and to.strip("/") else PurePosixPath()
    for given in paths:
        local = Path(given)
        if local.is_file():
            found.append((local, str(base / local.name)))
        elif local.is_dir():
            root = local.resolve()
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                found.append((path, str(base / root.name / PurePosixPath(*path.relative_to(root).parts))))
        else:
            raise ClientError(f"{given}: no such file or folder")
    return found


def cmd_new(api: Api, args) -> int:
    metadata = {}
    if args.metadata:
        try:
            metadata = json.loads(Path(args.metadata).read_text())
        except OSError as exc:
            raise ClientError(f"{args.metadata}: {exc.strerror}") from None
        except ValueError as exc:
            raise ClientError(f"{args.metadata} is not JSON: {exc}") from None
    draft = api.post("records", metadata, what="creating the record")
    print(draft["id"])
    return 0


def _draft(api: Api, record: str) -> dict:
    response = api.request("GET", f"records/{record}/draft", expect=(200, 404))
    if response.status_code == 404:
        raise ClientError(f"no draft of record '{record}' that you can see (unknown record, or not yours)")
    return response.json()


def cmd_upload(api: Api, args) -> int:
    _draft(api, args.record)
    sent = []
    for local, remote in _files(args.paths, args.to):
        upload = FileUpload(api, args.record, local, remote, jobs=args.jobs, restart=args.restart,
                            wait_seconds=args.wait, quiet=args.quiet)
        sent.append((remote, upload, upload.send()))
    # The server checks each file (reads it back) while the next one is hashed and sent; the results are awaited
    # at the end. A file whose check is still running when a later one fails is taken up by the next run.
    for remote, upload, answer in sent:
        result = upload.finish(answer)
        if not args.quiet:
            print(f"{remote}: {result['state']} (sha256 {result['sha256']})", file=sys.stderr)
    return 0


def cmd_submit(api: Api, args) -> int:
    _draft(api, args.record)
    payload = {"community": args.community} if args.community else {}
    draft = api.post(f"records/{args.record}/draft/actions/submit", payload, what="submitting")
    print(f"{args.record}: version {draft['version']} is {draft['state']}")
    return 0


def cmd_status(api: Api, args) -> int:
    response = api.request("GET", f"records/{args.record}/draft", expect=(200, 404))
    if response.status_code == 200:
        version = response.json()
        files = [(f["path"], f["size"], "ready") for f in version["files"]]
        uploads = api.get(f"records/{args.record}/draft/uploads")
        files += [(u["path"], u["size"], u["state"] + (f": {u['message']}" if u["message"] else "")) for u in uploads]
        runs = api.get(f"records/{args.record}/draft/runs")
        run = runs[0] if runs else None
    else:
        published = api.request("GET", f"records/{args.record}", expect=(200, 410))
        if published.status_code == 404:
            raise ClientError(f"unknown record '{args.record}'")
        version = published.json()
        files = [(f["path"], f["size"], "published") for f in version["files"]]
        run = None
    reviews = [r for r in api.get("requests") if r["record"] == args.record and r["version"] == version["version"]]
    print(f"record {args.record}, version {version['version']}: {version['state']}")
    print(f"DOI: {version.get('doi') or '(none yet)'}")
    if run:
        print(f"verification: {run['status']}, verdict {run['verdict'] or '(none yet)'}")
    elif reviews and reviews[0].get("latest_run"):
        latest = reviews[0]["latest_run"]
        print(f"verification: {latest['status']}, verdict {latest['verdict'] or '(none yet)'}")
    else:
        print("verification: not run")
    print(f"review: {reviews[0]['state'] if reviews else '(not submitted)'}")
    print(f"files ({len(files)}):")
    for path, size, state in files:
        print(f"  {path}  {size} bytes  {state}")
    return 0


def _version_files(api: Api, record: str, number: int | None) -> tuple[str, list[dict]]:
    path = f"records/{record}/versions/{number}" if number else f"records/{record}"
    response = api.request("GET", path, expect=(200, 404, 410))
    if response.status_code == 410:
        raise ClientError(f"record '{record}' version {number or 'latest'} was withdrawn; its files are not served")
    if response.status_code == 200:
        version = response.json()
        if any("download" not in f.get("links", {}) for f in version["files"]):
            # Embargoed or restricted files are listed without links for those who may not read them.
            raise ClientError(f"the files of record '{record}' version {version['version']} are not open to you "
                              f"(embargoed or restricted); see {version['links']['html']}")
        return f"version {version['version']}", [
            {"path": f["path"], "size": f["size"], "sha256": f["checksum"].split(":", 1)[1],
             "url": f["links"]["download"]} for f in version["files"]]
    draft = api.request("GET", f"records/{record}/draft", expect=(200, 404))
    if number or draft.status_code == 404:
        raise ClientError(f"unknown record '{record}'" + (f" or version {number}" if number else ""))
    return "the draft", [{"path": f["path"], "size": f["size"], "sha256": f["sha256"], "url": f["links"]["content"]}
                         for f in draft.json()["files"]]


def cmd_download(api: Api, args) -> int:
    label, files = _version_files(api, args.record, args.version)
    target = Path(args.to or args.record)
    for item in files:
        destination = target.joinpath(*PurePosixPath(item["path"]).parts)
        if ".." in PurePosixPath(item["path"]).parts or PurePosixPath(item["path"]).is_absolute():
            raise ClientError(f"refusing the path {item['path']!r}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        digest = hashlib.sha256()
        response = api.request("GET", item["url"], stream=True, what=f"downloading {item['path']}")
        with open(partial, "wb") as handle, tqdm(total=item["size"], unit="B", unit_scale=True, unit_divisor=1024,
                                                 desc=item["path"], disable=args.quiet) as bar:
            try:
                for chunk in response.iter_content(PIECE):
                    digest.update(chunk)
                    handle.write(chunk)
                    bar.update(len(chunk))
            except requests.RequestException as exc:
                raise ClientError(f"{item['path']}: the download broke off: {exc}") from None
        if digest.hexdigest() != item["sha256"]:
            partial.unlink()
            raise ClientError(f"{item['path']}: the bytes received hash to {digest.hexdigest()}, not the published "
                              f"sha256 {item['sha256']}; nothing was kept")
        os.replace(partial, destination)
    print(f"{len(files)} files of {label} of {args.record} in {target}, checksums verified", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="nbarchive", description=__doc__.split("\n\n")[0])
    main.add_argument("--url", default=os.environ.get("NBARCHIVE_URL", ""), help="server (default $NBARCHIVE_URL)")
    main.add_argument("--token", default=os.environ.get("NBARCHIVE_TOKEN", ""),
                      help="personal access token (default $NBARCHIVE_TOKEN)")
    main.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    main.add_argument("--version", action="version", version=f"nbarchive {__version__}")
    commands = main.add_subparsers(dest="command", required=True)

    new = commands.add_parser("new", help="create a record with a draft; prints its id")
    new.add_argument("--metadata", help="a JSON file with the draft's metadata (title, creators, license, ...)")
    new.set_defaults(run=cmd_new)

    upload = commands.add_parser("upload", help="upload files and folders to a draft; run again to resume")
    upload.add_argument("record")
    upload.add_argument("paths", nargs="+", metavar="PATH")
    upload.add_argument("--to", default="", metavar="DIR", help="folder in the version to put them in")
    upload.add_argument("--jobs", type=int, default=JOBS, help=f"parts sent at once (default {JOBS})")
    upload.add_argument("--restart", action="store_true", help="discard an earlier upload of a changed file")
    upload.add_argument("--wait", type=float, default=600, help="seconds to wait for the server's check")
    upload.set_defaults(run=cmd_upload)

    submit = commands.add_parser("submit", help="submit the draft for review")
    submit.add_argument("record")
    submit.add_argument("--community", help="community slug (default: the server's default)")
    submit.set_defaults(run=cmd_submit)

    status = commands.add_parser("status", help="files, verification verdict, review state and DOI")
    status.add_argument("record")
    status.set_defaults(run=cmd_status)

    download = commands.add_parser("download", help="download a version's files, checking their SHA-256")
    download.add_argument("record")
    download.add_argument("--version", type=int, dest="version", help="version number (default: the latest)")
    download.add_argument("--to", help="folder to write to (default: ./RECORD)")
    download.set_defaults(run=cmd_download)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(Api(args.url, args.token), args)
    except ClientError as exc:
        print(f"nbarchive: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nbarchive: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
