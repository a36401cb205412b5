"""The one error of notebook rendering."""


class NotebookRenderError(Exception):
    """The notebook cannot be shown; `message` is plain text for the reader (escaped when shown)."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)
