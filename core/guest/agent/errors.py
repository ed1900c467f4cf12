"""The one error a request handler raises on purpose: its message goes back to the host."""


class Failure(Exception):
    """A request that cannot be done; the message is one line for the user."""
