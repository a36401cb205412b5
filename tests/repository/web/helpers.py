"""Building what a browser posts to the deposit form."""

SECTIONS = ("creators", "related_identifiers", "funding", "data_references")
IMAGE = "registry.example.org/group/nb-image@sha256:" + "a" * 64
SHA = "b" * 64


def deposit_post(fields: dict | None = None, **rows: list[dict]) -> dict:
    """The POST body of the edit page: `fields` for the main form, one list of row dicts per section.

    An empty dict is a blank row, as the browser sends the extra rows nobody filled in.
    """
    data = {"title": "", "description": "", "resource_type": "ComputationalNotebook", "version_label": "",
            "license": "", "keywords": "", "container_image": "", "notebook_path": ""}
    data.update(fields or {})
    for section in SECTIONS:
        section_rows = rows.get(section, [])
        data[f"{section}-TOTAL_FORMS"] = str(len(section_rows))
        data[f"{section}-INITIAL_FORMS"] = "0"
        for index, row in enumerate(section_rows):
            for name, value in row.items():
                data[f"{section}-{index}-{name}"] = value
    return data
