"""Published versions made through the real services, so the search index is written as in production."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from repository.search import SearchParams, search_run
from tests.factories import UserFactory, published_version


@pytest.fixture
def moderator(db):
    return UserFactory()


@pytest.fixture
def publish(user, moderator):
    """publish(**metadata) -> a published version of a new record owned by `user`; `notebook_text=` puts a
    markdown cell with that text into the version's notebook."""
    def make(notebook_text: str | None = None, **metadata):
        extra_files = {}
        if notebook_text is not None:
            document = new_notebook(cells=[new_markdown_cell(notebook_text), new_code_cell("x = 1")],
                                    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})
            extra_files["analysis.ipynb"] = nbformat.writes(document).encode()
            metadata.setdefault("notebook_path", "analysis.ipynb")
        return published_version(user, moderator, extra_files=extra_files, **metadata)
    return make


def found(q: str = "", **params) -> list[str]:
    """The titles a search finds, in order."""
    return [hit.title for hit in search_run(SearchParams(q=q, size=100, **params)).hits]
