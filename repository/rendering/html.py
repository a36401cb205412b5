"""nbconvert's HTML exporter, made safe: the only module importing nbconvert.

`render_notebook_html` does the in-process part: validate, rebuild (cleaning.py), render with nbconvert's
"basic" template with `sanitize_html=True` and its `clean_html` replaced by our allowlist, sanitise the body once
more and wrap it in a fixed page.
"""

import html
import io
import logging
import re
import warnings

from repository.rendering.cleaning import ATTACHMENT_IMAGE_TYPES, clean_notebook
from repository.rendering.errors import NotebookRenderError
from repository.rendering.sanitize import sanitize_fragment


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
    notebook = clean_notebook(document)
    exporter = _exporter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "IPython3 lexer unavailable": plain Python colours are fine
            body, _ = exporter.from_notebook_node(notebook)
    except RecursionError:
        raise NotebookRenderError("The notebook's content is nested too deeply to be shown.") from None
    # The last parser decides: everything nbconvert produced goes through the allowlist once more.
    return page(sanitize_fragment(body), css=_page_css(exporter))
