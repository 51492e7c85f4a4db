"""``triage bench``: synthetic platform traffic and the measurements made with it."""
