"""factory_boy factories for every model the tests build directly."""

import json

import factory
from django.contrib.auth import get_user_model

from repository.models import Record, Version


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct horse battery staple")


class RecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Record
        skip_postgeneration_save = True

    @factory.post_generation
    def owners(self, create, extracted, **kwargs):
        if create and extracted:
            self.owners.add(*extracted)


class VersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Version

    record = factory.SubFactory(RecordFactory)
    number = 1
    created_by = factory.SubFactory(UserFactory)
    title = "Band gaps of perovskites"


def notebook_bytes(cells: int = 2) -> bytes:
    """A small, valid nbformat 4.5 notebook with code cells and stored outputs."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    notebook = new_notebook(
        cells=[new_markdown_cell("# Analysis")]
        + [
            new_code_cell(f"print({i} * 2)", execution_count=i + 1,
                          outputs=[new_output("stream", name="stdout", text=f"{i * 2}\n")])
            for i in range(cells)
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    return nbformat.writes(notebook).encode()


def notebook_dict(cells: int = 2) -> dict:
    return json.loads(notebook_bytes(cells))
