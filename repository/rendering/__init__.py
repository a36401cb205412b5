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
Python process (`python -m repository.rendering.worker`) with a wall-clock timeout (killed when it expires), an address
space limit and a minimal environment; the result is cached by the blob's sha256 under VAR_DIR/rendered.

What is where:
- `sanitize.py`  the nh3 allowlist and `sanitize_fragment` (both passes of layer 4 and nbconvert's clean_html);
- `cleaning.py`  layer 2: a new notebook rebuilt from the hostile JSON, keeping only what can be shown safely;
- `html.py`      layer 3: nbconvert (the only module importing it), the page around the body, `error_page`,
                 and `render_notebook_html`, which does layers 2-4 in-process;
- `worker.py`    the time-limited worker process (`python -m repository.rendering.worker`);
- `pages.py`     `rendered_page`: the cache by sha256 in front of the worker, for the review and landing pages.
"""

from repository.rendering.errors import NotebookRenderError
from repository.rendering.html import error_page, render_notebook_html
from repository.rendering.pages import RENDERER_VERSION, RESPONSE_HEADERS, RenderedPage, cached_page, rendered_page

__all__ = ["RENDERER_VERSION", "RESPONSE_HEADERS", "NotebookRenderError", "RenderedPage", "cached_page", "error_page",
           "render_notebook_html", "rendered_page"]
