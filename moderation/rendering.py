"""A stored notebook as static, sanitised HTML for the review page, rendered in a worker with a time limit.

Every notebook is hostile (see ../shared/SANDBOX.md, "Showing notebooks"). The layers, outermost first:

1. The page is served from its own URL with a Content-Security-Policy that allows no script, no network and
   no plugins, and that sandboxes the document (`RESPONSE_HEADERS`); the review page embeds it in an
   `<iframe sandbox>` without `allow-scripts` and without `allow-same-origin`.
2. `render_notebook_html` rebuilds the notebook from the validated JSON keeping only what it knows how to show:
   JavaScript outputs, widget views and widget state become a placeholder, output metadata shrinks to integer
   `width`/`height`, PNG/JPEG bytes (outputs and attachments) must start with their format's signature, an
   attachment name is only a key (never a path), notebook and cell metadata are dropped.
3. nbconvert's HTMLExporter renders it with `sanitize_html=True` and `embed_images=False` (the "basic" template:
   cells only, no head, no CDN), with nbconvert's bleach-based `clean_html` replaced by `sanitize_fragment`
   (nh3, the allowlist below), so every HTML or Markdown value is sanitised where nbconvert sanitises it.
4. The whole rendered body is sanitised once more with the same nh3 allowlist (the last parser decides), and
   only then wrapped in a fixed page whose only `<style>` is nbconvert's own classic stylesheet and pygments'
   colours: no `style` attribute or `<style>` element from the notebook survives. Images are `data:` URLs of
   image types only (`img src`); links are http(s), mailto or in-page `#fragments`.

Markdown rendering has had denial-of-service bugs, so `rendered_page` runs `render_notebook_html` in a fresh
Python process (`python -m moderation.rendering`) with a wall-clock timeout (killed when it expires), an address
space limit and a minimal environment; the result is cached by the blob's sha256 under VAR_DIR/rendered.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import nh3

logger = logging.getLogger(__name__)

# Bump when the rendering or the sanitiser changes: cached pages of the old version are then ignored.
RENDERER_VERSION = 1
PROJECT_DIR = Path(__file__).resolve().parent.parent

CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox"
RESPONSE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private",
}

DEFAULT_TIMEOUT = 30  # seconds; settings.NOTEBOOK_RENDER_TIMEOUT overrides
DEFAULT_MEMORY = 3 * 1024**3  # bytes of address space for the worker; settings.NOTEBOOK_RENDER_MEMORY overrides
DEFAULT_RETRY_AFTER = 600  # seconds a timed-out or crashed render is remembered before it is tried again
EXIT_REFUSED = 3  # the worker's exit code for "this notebook cannot be rendered", the reason on stdout

TIMEOUT_MESSAGE = ("The notebook could not be rendered in time. Download the .ipynb file to look at it in "
                   "Jupyter.")
FAILURE_MESSAGE = "The notebook could not be rendered. Download the .ipynb file to look at it in Jupyter."


class NotebookRenderError(Exception):
    """The notebook cannot be shown; `message` is plain text for the reader (escaped when shown)."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


# --- The HTML allowlist (both nh3 passes) ----------------------------------------------------------------------

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del", "details",
    "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "main", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
}
# Removed together with everything inside them (other unknown tags are removed but keep their text).
REMOVED_WITH_CONTENT = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript", "noembed",
    "noframes", "template", "svg", "math", "textarea", "select", "option", "title", "head", "xmp", "plaintext",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start", "type"},
    "col": {"span"},
    "colgroup": {"span"},
}
# data: is a scheme nh3 lets through only so that `_attribute_filter` can keep image data URLs in img src.
URL_SCHEMES = {"http", "https", "mailto", "data"}
IMAGE_DATA_URL = re.compile(r"data:image/(?:png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]*={0,2}")
SMALL_NUMBER = re.compile(r"[0-9]{1,5}")
MAX_DIMENSION = 10000


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "src":
        # Only pictures carried inside the page itself; the CSP (img-src data:) would block anything else anyway.
        return value if tag == "img" and IMAGE_DATA_URL.fullmatch(value) else None
    if attribute == "href":
        return None if value.strip().lower().startswith("data:") else value
    if attribute in {"width", "height", "colspan", "rowspan", "span", "start"}:
        return value if SMALL_NUMBER.fullmatch(value) and 0 < int(value) <= MAX_DIMENSION else None
    return value


def _relative_url(url: str) -> str | None:
    # In-page anchors (headings' ¶ links) only: a relative link would point into the application.
    return url if url.startswith("#") else None


def sanitize_fragment(fragment) -> str:
    """Sanitise an HTML fragment with the allowlist above (no script, no styles, no forms, no frames)."""
    if isinstance(fragment, bytes):
        fragment = fragment.decode("utf-8", errors="replace")
    return nh3.clean(
        str(fragment), tags=ALLOWED_TAGS, clean_content_tags=REMOVED_WITH_CONTENT, attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter, url_schemes=URL_SCHEMES, url_relative=_relative_url,
        link_rel="noopener noreferrer nofollow", strip_comments=True,
    )


# --- Rebuilding the notebook from hostile JSON ----------------------------------------------------------------

SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
OUTPUT_IMAGE_TYPES = ("image/png", "image/jpeg")
ATTACHMENT_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")
# What an output may show, each as nbconvert's classic template shows it with sanitize_html=True.
SHOWN_OUTPUT_TYPES = {"text/plain", "text/html", "text/markdown", "text/latex", "image/svg+xml", *OUTPUT_IMAGE_TYPES}
SCRIPT_OUTPUT_TYPES = {"application/javascript", "text/javascript", "application/x-javascript"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LEXER_NAME = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")


def _text(value) -> str:
    """nbformat's multiline strings are a string or a list of strings; anything else shows as nothing."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(part for part in value if isinstance(part, str))
    return ""


def _dimension(value) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= MAX_DIMENSION else None


def checked_image_base64(mime_type: str, value) -> str | None:
    """The canonical base64 of image bytes that really are `mime_type` (by signature), or None."""
    encoded = "".join(_text(value).split())
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not data or not data.startswith(SIGNATURES[mime_type]):
        return None
    return base64.b64encode(data).decode("ascii")


def _placeholder(message: str):
    from nbformat.v4 import new_output

    return new_output("display_data", data={"text/plain": f"[{message}]"})


def _clean_output(output: dict) -> list:
    from nbformat.v4 import new_output

    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return [new_output("stream", name=name, text=_text(output.get("text")))]
    if kind == "error":
        traceback = [line for line in output.get("traceback") or [] if isinstance(line, str)]
        return [new_output("error", ename=_text(output.get("ename")), evalue=_text(output.get("evalue")),
                           traceback=traceback)]
    if kind not in ("display_data", "execute_result"):
        return [_placeholder("An output of an unknown type is not shown")]
    raw_data = output.get("data") if isinstance(output.get("data"), dict) else {}
    raw_metadata = output.get("metadata") if isinstance(output.get("metadata"), dict) else {}
    data, metadata, notes = {}, {}, []
    for mime_type, value in raw_data.items():
        if mime_type in SCRIPT_OUTPUT_TYPES:
            notes.append("A JavaScript output is not shown here")
        elif mime_type == WIDGET_VIEW:
            notes.append("An interactive widget is not shown here")
        elif mime_type in OUTPUT_IMAGE_TYPES:
            checked = checked_image_base64(mime_type, value)
            if checked is None:
                notes.append(f"An {mime_type} output is not shown: its bytes are not a {mime_type} image")
                continue
            data[mime_type] = checked
            # Output metadata reaches the template unquoted: only integer width/height are kept.
            sizes = raw_metadata.get(mime_type) if isinstance(raw_metadata.get(mime_type), dict) else {}
            kept = {key: _dimension(sizes.get(key)) for key in ("width", "height")}
            kept = {key: value for key, value in kept.items() if value is not None}
            if kept:
                metadata[mime_type] = kept
        elif mime_type in SHOWN_OUTPUT_TYPES:
            data[mime_type] = _text(value)
        # Other types (widget state, JSON, PDFs, vendor types) have no safe static view: silently left out,
        # text/plain (kept above) is what Jupyter shows for them too.
    if "text/html" in data and "image/svg+xml" in data:
        data.pop("text/html")  # the SVG as an image shows the same picture without inline markup
    cleaned = [_placeholder(note) for note in notes]
    if data:
        if kind == "execute_result":
            count = output.get("execution_count")
            count = count if isinstance(count, int) and not isinstance(count, bool) else None
            cleaned.append(new_output("execute_result", data=data, metadata=metadata, execution_count=count))
        else:
            cleaned.append(new_output("display_data", data=data, metadata=metadata))
    return cleaned


def _clean_attachments(raw) -> dict:
    """name -> {mime: base64} for image attachments whose bytes match their type. Names are only keys."""
    attachments = {}
    if not isinstance(raw, dict):
        return attachments
    for name, bundle in raw.items():
        if not isinstance(name, str) or not isinstance(bundle, dict):
            continue
        for mime_type in ATTACHMENT_IMAGE_TYPES:
            if mime_type in bundle:
                checked = checked_image_base64(mime_type, bundle[mime_type])
                if checked is not None:
                    attachments[name] = {mime_type: checked}
                    break
    return attachments


def _clean_notebook(document: dict):
    """A new notebook holding only what is shown, built from the validated JSON."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

    cells = []
    for index, cell in enumerate(document.get("cells") or [], start=1):
        if not isinstance(cell, dict):
            continue
        kind, source = cell.get("cell_type"), _text(cell.get("source"))
        if kind == "markdown":
            new = new_markdown_cell(source)
            attachments = _clean_attachments(cell.get("attachments"))
            if attachments:
                new["attachments"] = attachments
        elif kind == "code":
            count = cell.get("execution_count")
            outputs = [cleaned for output in cell.get("outputs") or [] if isinstance(output, dict)
                       for cleaned in _clean_output(output)]
            new = new_code_cell(source, execution_count=count if isinstance(count, int) and not isinstance(
                count, bool) else None, outputs=outputs)
        elif kind == "raw":
            new = new_raw_cell(source)  # no raw_mimetype: the template shows nothing of it
        else:
            continue
        new["id"] = f"cell-{index}"
        cells.append(new)
    language = (document.get("metadata") or {}).get("language_info") or {}
    name = language.get("name") if isinstance(language, dict) else None
    metadata = {"language_info": {"name": name}} if isinstance(name, str) and LEXER_NAME.fullmatch(name) else {}
    return new_notebook(cells=cells, metadata=metadata)


# --- nbconvert ------------------------------------------------------------------------------------------------

def _exporter():
    from jinja2 import pass_context
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class SafeMarkdownRenderer(IPythonRenderer):
        """Markdown images come from validated attachments only; no file is ever read, no name is a path."""

        def _embed_image_or_attachment(self, src: str) -> str:
            if src.startswith("attachment:"):
                bundle = self.attachments.get(src[len("attachment:"):])
                if isinstance(bundle, dict):
                    for mime_type in ATTACHMENT_IMAGE_TYPES:
                        if mime_type in bundle:
                            return f"data:{mime_type};base64,{bundle[mime_type]}"
                return ""  # a missing or refused attachment shows no picture (nbconvert would raise)
            return src

        def _src_to_base64(self, src: str):
            return None

        def _html_embed_images(self, html_text: str) -> str:
            return html_text

    class SafeHTMLExporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            renderer = SafeMarkdownRenderer(escape=False, allow_harmful_protocols=False, embed_images=False,
                                            attachments=dict(cell.get("attachments", {})), path="",
                                            anchor_link_text=self.anchor_link_text)
            return MarkdownWithMath(renderer=renderer).render(source)

        def default_filters(self):
            for name, function in super().default_filters():
                yield name, sanitize_fragment if name == "clean_html" else function
            yield "clean_html", sanitize_fragment

    exporter = SafeHTMLExporter(template_name="basic", sanitize_html=True, embed_images=False,
                                skip_svg_encoding=False)
    exporter.log.setLevel(logging.ERROR)
    return exporter


def _page_css(exporter) -> str:
    """nbconvert's classic stylesheet without its web fonts (nothing to load), plus pygments' colours."""
    from pygments.formatters import HtmlFormatter

    environment = exporter.environment
    css = environment.loader.get_source(environment, "static/style.css")[0]
    css = re.sub(r"@font-face\s*\{[^}]*\}", "", css)
    css = re.sub(r"url\([^)]*\)", "none", css)
    css = css.replace("</", "<\\/")
    return "\n".join([css, HtmlFormatter(style="default").get_style_defs(".highlight"), PAGE_CSS])


PAGE_CSS = """
body { overflow: visible; padding: 8px; background: #fff; }
div#notebook { overflow: visible; border-top: none; padding-top: 0; }
div#notebook-container { box-shadow: none; -webkit-box-shadow: none; width: auto; max-width: 1140px; }
.render-error { font: 16px/1.5 system-ui, sans-serif; color: #7a1a1a; background: #fdf0f0;
  border: 1px solid #e0b4b4; border-radius: 4px; padding: 12px 16px; margin: 16px; }
"""


def page(body: str, css: str = "", title: str = "Rendered notebook") -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>\n{css}\n</style>\n</head>\n"
        f"<body>\n<main>\n<div id=\"notebook\" class=\"border-box-sizing\">\n"
        f"<div class=\"container\" id=\"notebook-container\">\n{body}\n</div>\n</div>\n</main>\n</body>\n</html>\n"
    )


def error_page(message: str) -> str:
    """A plain page saying why there is no rendering; the message is escaped."""
    return page(f"<p class=\"render-error\" role=\"alert\">{html.escape(message)}</p>", css=PAGE_CSS,
                title="Notebook not rendered")


def _max_size() -> int:
    from django.conf import settings

    return settings.MAX_NOTEBOOK_SIZE


def render_notebook_html(notebook_bytes: bytes, *, max_size: int | None = None) -> str:
    """The notebook as a complete, sanitised, script-free HTML page; NotebookRenderError if it cannot be.

    Runs in-process: callers that face uploaded notebooks use `rendered_page`, which adds the time limit.
    """
    from repository.errors import InvalidNotebook
    from repository.services.notebooks import notebook_validate

    limit = _max_size() if max_size is None else max_size
    if len(notebook_bytes) > limit:
        raise NotebookRenderError(f"The notebook is larger than the {limit} bytes that are rendered here.")
    try:
        document = notebook_validate(io.BytesIO(notebook_bytes))
    except InvalidNotebook as exc:
        raise NotebookRenderError(f"The notebook cannot be shown: {exc.detail}") from None
    notebook = _clean_notebook(document)
    exporter = _exporter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "IPython3 lexer unavailable": plain Python colours are fine
            body, _ = exporter.from_notebook_node(notebook)
    except RecursionError:
        raise NotebookRenderError("The notebook's content is nested too deeply to be shown.") from None
    # The last parser decides: everything nbconvert produced goes through the allowlist once more.
    return page(sanitize_fragment(body), css=_page_css(exporter))


# --- The worker process, its time limit and the cache ---------------------------------------------------------

@dataclass(frozen=True)
class RenderedPage:
    html: str
    status: int = 200


def _setting(name: str, default):
    from django.conf import settings

    return getattr(settings, name, default)


def _worker_command(max_size: int, memory: int) -> list[str]:
    return [sys.executable, "-m", "moderation.rendering", str(max_size), str(memory)]


def _run_worker(notebook_bytes: bytes, *, timeout: float, max_size: int, memory: int) -> RenderedPage:
    """Render in a fresh `python -m moderation.rendering`, killed when `timeout` seconds have passed."""
    with tempfile.TemporaryDirectory(prefix="nbarchive-render-") as home:
        # A minimal environment: the renderer needs no secret, and no user's Jupyter templates or config.
        environment = {"PATH": os.defpath, "HOME": home, "LANG": "C.UTF-8", "TZ": "UTC", "PYTHONHASHSEED": "0",
                       "PYTHONPATH": str(PROJECT_DIR), "PYTHONDONTWRITEBYTECODE": "1",
                       "JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_NO_CONFIG": "1"}
        try:
            completed = subprocess.run(_worker_command(max_size, memory), input=notebook_bytes, capture_output=True, timeout=timeout,
                                       env=environment, cwd=home, check=False)
        except subprocess.TimeoutExpired:  # subprocess.run has killed the worker
            logger.warning("Rendering a notebook took longer than %s s; the worker was killed.", timeout)
            return RenderedPage(error_page(TIMEOUT_MESSAGE), 503)
    if completed.returncode == 0:
        return RenderedPage(completed.stdout.decode("utf-8"), 200)
    if completed.returncode == EXIT_REFUSED:
        return RenderedPage(error_page(completed.stdout.decode("utf-8", errors="replace")), 422)
    logger.error("The notebook render worker failed with exit code %s: %s", completed.returncode,
                 completed.stderr[-4000:].decode("utf-8", errors="replace"))
    return RenderedPage(error_page(FAILURE_MESSAGE), 503)


def _cache_dir() -> Path:
    from django.conf import settings

    return Path(settings.VAR_DIR) / "rendered"


def _cache_paths(sha256: str) -> dict[int, Path]:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
        raise ValueError("not a sha256")
    folder = _cache_dir() / sha256[:2]
    return {status: folder / f"{sha256}.v{RENDERER_VERSION}.{status}.html" for status in (200, 422, 503)}


def _cache_read(sha256: str) -> RenderedPage | None:
    retry_after = _setting("NOTEBOOK_RENDER_RETRY_AFTER", DEFAULT_RETRY_AFTER)
    for status, path in _cache_paths(sha256).items():
        try:
            if status == 503 and time.time() - path.stat().st_mtime > retry_after:
                continue  # a timeout or crash is remembered for a while, then tried again
            return RenderedPage(path.read_text(encoding="utf-8"), status)
        except FileNotFoundError:
            continue
    return None


def _cache_write(sha256: str, rendered: RenderedPage) -> None:
    path = _cache_paths(sha256)[rendered.status]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".html")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(rendered.html)
        os.replace(temporary, path)  # atomic: a reader sees the old state or the whole new page
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def rendered_page(blob) -> RenderedPage:
    """The page for a notebook blob: from the cache, or rendered once in a time-limited worker.

    Never raises: a notebook that cannot be shown gives an error page (422 refused, 503 timed out or failed).
    """
    from repository import storage

    cached = _cache_read(blob.sha256)
    if cached is not None:
        return cached
    max_size = _setting("MAX_NOTEBOOK_SIZE", 200 * 1024**2)
    if blob.size > max_size:
        return RenderedPage(error_page(f"The notebook is larger than the {max_size} bytes that are rendered here."),
                            422)
    try:
        with storage.open_blob(blob.storage_key) as handle:
            notebook_bytes = handle.read(max_size + 1)
    except Exception:  # storage errors vary by backend; the page must still answer
        logger.exception("Could not read notebook blob %s for rendering", blob.sha256)
        return RenderedPage(error_page("The notebook file could not be read right now; try again later."), 503)
    try:
        rendered = _run_worker(notebook_bytes, timeout=_setting("NOTEBOOK_RENDER_TIMEOUT", DEFAULT_TIMEOUT),
                               max_size=max_size, memory=_setting("NOTEBOOK_RENDER_MEMORY", DEFAULT_MEMORY))
    except Exception:  # e.g. the worker could not be started
        logger.exception("Could not render notebook blob %s", blob.sha256)
        return RenderedPage(error_page(FAILURE_MESSAGE), 503)
    try:
        _cache_write(blob.sha256, rendered)
    except OSError:
        logger.exception("Could not cache the rendering of notebook blob %s", blob.sha256)
    return rendered


def _worker_main(argv: list[str]) -> int:
    """`python -m moderation.rendering MAX_SIZE MEMORY`: notebook bytes on stdin, the page on stdout."""
    import resource

    max_size, memory = int(argv[0]), int(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR)
    notebook_bytes = sys.stdin.buffer.read(max_size + 1)
    try:
        result = render_notebook_html(notebook_bytes, max_size=max_size)
    except NotebookRenderError as exc:
        sys.stdout.buffer.write(exc.message.encode("utf-8"))
        return EXIT_REFUSED
    except MemoryError:
        sys.stdout.buffer.write(b"The notebook needs more memory to render than this server allows.")
        return EXIT_REFUSED
    sys.stdout.buffer.write(result.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
