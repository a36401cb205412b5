"""The RO-Crate metadata of a published version (`ro-crate-metadata.json`), built with the `rocrate` package.

The crate is the version as "Download all" zips it: every file of the version at its path (with size, sha256
and media type), the creators (ORCID iDs as their `@id`, affiliations as organisations), the licence (SPDX URL),
the DOI as the root's identifier, the related identifiers it cites or derives from, and the data the notebook
reads from elsewhere (`mentions`, each with the checksum the run verifies). Only metadata is built here; no
file's bytes are read (repository.web.crate streams them into the zip).
"""

import json

from rocrate.model.contextentity import ContextEntity
from rocrate.model.person import Person
from rocrate.rocrate import ROCrate

from repository.exports import creator_name, doi_url, publication_date, version_landing_url
from repository.exports.jsonld import SPDX_LICENSE_URL, file_media_type, related_url
from repository.models import DataReference, Version
from repository.validators import normalize_doi, normalize_ror

METADATA_NAME = "ro-crate-metadata.json"


def version_crate(version: Version) -> ROCrate:
    crate = ROCrate(gen_preview=False)
    root = crate.root_dataset
    root["name"] = version.title
    root["description"] = version.description
    root["datePublished"] = publication_date(version).isoformat()
    root["version"] = version.version_label or str(version.number)
    root["url"] = version_landing_url(version)
    if version.doi:
        root["identifier"] = doi_url(version.doi)
    if version.keywords:
        root["keywords"] = list(version.keywords)
    if version.license:
        licence_url = SPDX_LICENSE_URL.format(version.license)
        crate.add(ContextEntity(crate, licence_url, properties={"@type": "CreativeWork", "name": version.license,
                                                                "identifier": version.license}))
        root["license"] = {"@id": licence_url}
    root["author"] = [{"@id": _add_creator(crate, creator, position)["@id"]}
                      for position, creator in enumerate(version.creators.all())]

    for version_file in sorted(version.files.all(), key=lambda f: f.path):
        properties = {"name": version_file.path, "contentSize": str(version_file.blob.size),
                      "sha256": version_file.blob.sha256}
        if media_type := file_media_type(version_file.path):
            properties["encodingFormat"] = media_type
        if version_file.path == version.notebook_path:
            properties["@type"] = ["File", "SoftwareSourceCode"]
            properties["programmingLanguage"] = "Python"
        crate.add_file(dest_path=version_file.path, properties=properties)

    mentions = [_add_reference(crate, reference) for reference in version.data_references.all()]
    if mentions:
        root["mentions"] = [{"@id": entity["@id"]} for entity in mentions]
    related = [_add_related(crate, related) for related in version.related_identifiers.all()]
    if related:
        root["citation"] = [{"@id": entity["@id"]} for entity in related]
    return crate


def crate_metadata_json(version: Version) -> bytes:
    return json.dumps(version_crate(version).metadata.generate(), indent=2, ensure_ascii=False).encode("utf-8")


def _add_creator(crate: ROCrate, creator, position: int):
    name = creator_name(creator)
    identifier = f"https://orcid.org/{creator.orcid}" if creator.orcid else f"#creator-{position + 1}"
    properties = {"name": name.display}
    if not name.is_person:
        properties["@type"] = "Organization"
    if name.given:
        properties["givenName"] = name.given
    if name.family:
        properties["familyName"] = name.family
    if creator.affiliation:
        organisation_id = (f"https://ror.org/{normalize_ror(creator.affiliation_ror)}" if creator.affiliation_ror
                           else f"#affiliation-{position + 1}")
        crate.add(ContextEntity(crate, organisation_id, properties={"@type": "Organization",
                                                                   "name": creator.affiliation}))
        properties["affiliation"] = {"@id": organisation_id}
    return crate.add(Person(crate, identifier, properties=properties))


def _add_reference(crate: ROCrate, reference: DataReference):
    if reference.kind == DataReference.Kind.DOI:
        identifier = doi_url(normalize_doi(reference.identifier))
    elif reference.kind == DataReference.Kind.URL:
        identifier = reference.identifier
    else:
        identifier = f"#data-{reference.position + 1}"
    properties = {"@type": "CreativeWork" if identifier.startswith("#") else "File",
                  "name": reference.title or reference.target_path, "sha256": reference.sha256,
                  "contentSize": str(reference.size), "localPath": reference.target_path,
                  "additionalType": reference.get_kind_display()}
    if reference.kind == DataReference.Kind.REPOSITORY_FILE:
        properties["identifier"] = reference.identifier
    if reference.query:
        properties["query"] = json.dumps(reference.query, sort_keys=True)
    return crate.add(ContextEntity(crate, identifier, properties=properties))


def _add_related(crate: ROCrate, related):
    url = related_url(related.scheme, related.identifier) or f"#related-{related.position + 1}"
    return crate.add(ContextEntity(crate, url, properties={
        "@type": "CreativeWork", "identifier": related.identifier, "name": related.identifier,
        "additionalType": f"{related.relation} ({related.scheme})"}))
