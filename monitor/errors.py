"""One exception tree: everything the package raises on purpose is a MonitorError."""


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose."""


class ConfigError(MonitorError):
    """The configuration file is missing, unreadable or invalid."""


class RemoteError(MonitorError):
    """Another host refused or failed a request (a feed server, the Bot API, an SMTP server).

    `retry_after` is the server's requested wait in seconds when it gave one (HTTP 429/503 Retry-After,
    the Bot API's parameters.retry_after); callers wait at least that long before asking again.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FetchError(RemoteError):
    """A feed or page could not be fetched (network, HTTP status, size cap).

    `status` is the HTTP status when the server answered.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class ParseError(MonitorError):
    """Fetched bytes are not a usable feed."""


class StoreError(MonitorError):
    """The database refused or failed an operation.

    `reason` is the database's own words without what was being done ("database or disk is full"): the
    same for every operation one cause makes fail, so the daemon can tell a cause once, not once per write.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class NotifyError(RemoteError):
    """A channel could not deliver a message.

    `permanent` is true when retrying cannot help (chat not found, bot blocked, bad request). `unreachable`
    is true when the channel's server was not reached at all (connection refused, name not resolved,
    connect timeout): a fact about the channel, not about the message.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None, unreachable: bool = False
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.permanent = permanent
        self.unreachable = unreachable


class ModelError(MonitorError):
    """The topic model could not be built, loaded or applied."""


class UsageError(MonitorError):
    """A command was given arguments it cannot act on (an unknown alert id or topic, a bad import file)."""
