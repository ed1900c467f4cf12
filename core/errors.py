"""Errors the user sees as one line, and their exit codes."""


class HyperError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code = 1


class UserError(HyperError):
    """Bad input or an impossible request: shown as one line, exit code 1."""


class NotFound(UserError):
    """A named pod, container or image does not exist."""


class Conflict(UserError):
    """The request contradicts the current state (name taken, illegal transition)."""


class DriverError(HyperError):
    """A driver (hypervisor, network, images) failed doing something real."""


class AgentError(DriverError):
    """The guest agent refused a request or stopped answering."""


class AgentTimeout(AgentError):
    """The guest agent did not answer in time."""


class NoSpace(DriverError):
    """A disk hyperd writes to is full (or its quota reached): says which store."""
