"""Testinfra: the host fixture comes from molecule's inventory."""
