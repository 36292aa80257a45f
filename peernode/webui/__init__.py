"""The node's web pages (issue 5): public search, union entries, the library directory and new
records; staff pages behind a login; Bahasa Indonesia and English; see docs/web.md.

``app.setup_webui`` wires them into the daemon; nothing is imported here, so the CLI's
``staff`` command loads no web machinery."""
