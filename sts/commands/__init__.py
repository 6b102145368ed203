"""The server's ``jobsts`` subcommands, run where the STS configuration file is: ``init``,
``keys``, ``access-id --config``, ``serve`` and ``demo``. Each module keeps its imports light,
so ``jobsts --help`` does not load the server."""
