"""The client's commands, one module per role: ``submitter`` (login, logout, submit, jobs),
``admin`` (node, access-id) and ``agent`` (``jobsts agent ...``). ``realms.console`` names them."""
