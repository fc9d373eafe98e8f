"""Subcommands of the ``collsim`` CLI (see simulator.cli)."""
