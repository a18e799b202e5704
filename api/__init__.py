"""Every way in: the HTTP app (``api.app``), the CLI (``api.cli``) and their composition root."""

__all__: list[str] = []
