"""The web UI: static ES modules served by the API process, talking only to the public HTTP API."""
