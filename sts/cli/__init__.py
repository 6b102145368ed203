"""The STS's ``jobsts`` subcommands: admin (local, reads the config), serve, and client commands."""
