# ReviewRequest and its timeline arrive with the moderation issue; see ../shared/DESIGN.md.
