"""One exception tree: everything the package raises on purpose is a MonitorError."""


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose."""


class ConfigError(MonitorError):
    """The configuration file is missing, unreadable or invalid."""


class FetchError(MonitorError):
    """A feed or page could not be fetched (network, HTTP status, size cap).

    `status` is the HTTP status when the server answered; `retry_after` is the server's requested wait in
    seconds (429/503 Retry-After), when it gave one.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ParseError(MonitorError):
    """Fetched bytes are not a usable feed."""


class StoreError(MonitorError):
    """The database refused or failed an operation."""


class NotifyError(MonitorError):
    """A channel could not deliver a message.

    `permanent` is true when retrying cannot help (chat not found, bot blocked, bad request);
    `retry_after` is the server's requested wait in seconds, when it gave one.
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class ModelError(MonitorError):
    """The topic model could not be built, loaded or applied."""


class UsageError(MonitorError):
    """A command was given arguments it cannot act on (an unknown alert id or topic, a bad import file)."""
