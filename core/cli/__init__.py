"""hyperctl: the command line."""
