"""Subcommands of the listing-audit CLI: each module defines register(subparsers)."""
