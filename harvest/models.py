# The OAI-PMH provider and harvester arrive with the harvesting issue; see ../shared/DESIGN.md.
