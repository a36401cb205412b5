"""The REST API as the client sees it: one session with the token, errors turned into one-line ClientErrors."""

import requests

TIMEOUT = (10, 300)


class ClientError(Exception):
    """What the command prints, on one line, before exiting with a non-zero status."""


def _problem(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title") or ""
        errors = body.get("errors") or []
        if errors and not detail.strip():
            detail = "; ".join(f"{e.get('field')}: {' '.join(e.get('messages', []))}" for e in errors)
        return str(detail)
    return str(body)[:200]


class Api:
    def __init__(self, url: str, token: str):
        if not url:
            raise ClientError("no server: set NBARCHIVE_URL or pass --url")
        self.base = url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/json"

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base}/api/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, expect=(200, 201, 202, 204), what: str = "", **kwargs):
        try:
            response = self.session.request(method, self.url(path), timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise ClientError(f"cannot reach {self.base}: {type(exc).__name__}: {exc}") from None
        if response.status_code in expect:
            return response
        raise self.error(response, what)

    def error(self, response: requests.Response, what: str = "") -> ClientError:
        detail = _problem(response)
        if response.status_code == 401:
            return ClientError(f"the server refused the token (401): check NBARCHIVE_TOKEN or --token ({detail})")
        prefix = f"{what}: " if what else ""
        return ClientError(f"{prefix}{detail} (HTTP {response.status_code})")

    def get(self, path: str, **kwargs) -> dict | list:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, payload: dict | None = None, **kwargs) -> dict | list:
        response = self.request("POST", path, json=payload or {}, **kwargs)
        return response.json() if response.content else {}

    def delete(self, path: str, **kwargs) -> None:
        self.request("DELETE", path, **kwargs)
