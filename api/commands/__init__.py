"""Sub-commands of the ``journeygraph`` CLI, one module a group (mounted in ``api.cli``).

``api.commands._output`` holds what every command shares: the console, ``--json``,
progress bars and the clean exit on a domain error.
"""
