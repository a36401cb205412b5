"""Rebuilding the notebook from hostile JSON: a new notebook holding only what the page can show safely.

JavaScript outputs, widget views and widget state become a placeholder, output metadata shrinks to integer
`width`/`height`, PNG/JPEG bytes (outputs and attachments) must start with their format's signature, an attachment
name is only a key (never a path), notebook and cell metadata are dropped.
"""

import base64
import binascii
import re

from repository.rendering.sanitize import MAX_DIMENSION

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


def clean_notebook(document: dict):
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
