"""Drivers shipped with hypercontainer, registered as entry points like any third party's."""
