"""Writes of the GitLab app: `imports` (links, the tag push webhook, refs imported as version drafts) and `mirror`
(published versions pushed to GitLab)."""
