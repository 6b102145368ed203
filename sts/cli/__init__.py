"""The submitter's client commands (``login``, ``logout``, ``node``, ``submit``, ``jobs``) and their stored session."""
