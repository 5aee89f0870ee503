"""The one project exception: a message for people and a code for programs."""


class PumpStreamError(Exception):
    """A refused operation: an illegal transition, an invalid order, a missing permission."""

    def __init__(self, message: str, *, code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field

    def as_dict(self) -> dict:
        """The error as the pages and Socket.IO clients receive it."""
        body = {"message": self.message, "code": self.code}
        if self.field:
            body["field"] = self.field
        return body
