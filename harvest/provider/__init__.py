"""OAI-PMH 2.0 provider: our metadata out, at /oai (GET and POST, all six verbs).

Items are the accepted versions of records (publishing, published, withdrawn); their identifier is
`oai:<namespace>:<record id>/v<number>` and their datestamp the UTC time, to the second, of the last change to
what harvesters see (`Version.public_changed_at`: acceptance, a metadata correction, withdrawal, or a new or
withdrawn neighbouring version, whose links change). Formats: `oai_dc` and `oai_datacite` (DataCite 4.5), both
rendered by repository.exports. Sets: `community:<slug>` and `resource_type:<type>` (sets.py). A withdrawn version
stays an item for good (deletedRecord `persistent`): a header with status="deleted" and no metadata.

Modules: views.py (the endpoint) -> verbs.py (one function per verb) over arguments.py (argument checks),
tokens.py (resumption tokens), items.py (queries), formats.py, sets.py, document.py (XML) and protocol.py.

Paging, and harvesting while the repository changes
---------------------------------------------------
Lists are ordered by (public_changed_at, id) and a resumptionToken carries the position of the last item sent,
signed and stateless (tokens.py); the next page is the `OAI_PAGE_SIZE` items after that position. There is no
offset, so nothing that happens during a harvest moves the pages:

- a version accepted during the harvest gets a datestamp later than every item already sent; it comes at the end
  of the list, and no item is skipped or sent twice because of it;
- a version that changes *before* the harvest has reached it (corrected, withdrawn) moves towards the end and is
  sent once, in its new state;
- a version that changes *after* it was sent moves past the harvester's position and is sent again, with its new
  datestamp (a withdrawn one as deleted). That is what OAI-PMH's incremental harvesting intends: the harvester
  replaces what it holds by identifier, and its next `from=` harvest would pick the change up anyway. It is the
  only way an item comes twice in one list, and only items that changed do.

`completeListSize` is counted once, when the list is first requested, and carried in the token; like the spec's,
it is an estimate, and the last (empty) token states how many items the list really had.

One limit of ordering by a datestamp written by the application: the datestamp is the time of the change, not of
its commit. A version whose transaction commits after a harvester has already read past its datestamp is missed by
that harvest (and by an incremental harvest starting from the response date). The transactions that set it are
short (milliseconds), so the window is that small; harvesters that overlap their `from` with the previous harvest
by a few seconds, as the OAI-PMH guidelines recommend, close it.
"""
