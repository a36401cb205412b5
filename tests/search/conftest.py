"""Published versions made through the real services, so the search index is written as in production."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from repository.models import Version
from repository.search import SearchParams, search_run
from tests.factories import UserFactory, accept, demo_draft, sync_pending, upload


@pytest.fixture
def moderator(db):
    return UserFactory()


@pytest.fixture
def publish(user, moderator):
    """publish(**metadata) -> a published version of a new record owned by `user`; `notebook_text=` puts a
    markdown cell with that text into the version's notebook."""
    def make(notebook_text: str | None = None, **metadata):
        draft = demo_draft(user, **metadata)
        if notebook_text is not None:
            document = new_notebook(cells=[new_markdown_cell(notebook_text), new_code_cell("x = 1")],
                                    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})
            upload(draft, user, "analysis.ipynb", nbformat.writes(document).encode())
            Version.objects.filter(pk=draft.pk).update(notebook_path="analysis.ipynb")
        version = accept(draft, moderator)
        sync_pending()
        version.refresh_from_db()
        return version
    return make


def found(q: str = "", **params) -> list[str]:
    """The titles a search finds, in order."""
    return [hit.title for hit in search_run(SearchParams(q=q, size=100, **params)).hits]
