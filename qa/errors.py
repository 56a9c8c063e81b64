"""The small error hierarchy the CLI and the web app map to messages and statuses."""


class FootnoteError(Exception):
    """Base of every error Footnote raises on purpose; `status` is the HTTP status to use."""

    status = 500


class IndexNotFound(FootnoteError):
    """No published index exists at the given folder yet."""

    status = 503


class IndexDamaged(FootnoteError):
    """A file of the index is missing, cut or unreadable (the message names it)."""

    status = 503


class IndexMismatch(FootnoteError):
    """The index was built with another model or schema version and must be rebuilt."""

    status = 503


class IndexChanged(IndexNotFound):
    """The generation a request was reading was replaced and its files removed meanwhile (a
    merge right after a publish); the Pipeline asks again on the newest one."""


class IndexLocked(FootnoteError):
    """Another process is updating the same index right now."""

    status = 409


class ParseError(FootnoteError):
    """A source file could not be read or parsed; the message names the file and the reason."""

    status = 422


class UnsupportedFormat(ParseError):
    """A file's extension is not one Footnote reads."""

    status = 415


class DiskFull(FootnoteError):
    """The disk holding the index filled up during an update; nothing was published."""

    status = 507


class BadRequest(FootnoteError):
    """A request's parameter is out of range or malformed (a listing's offset or limit)."""

    status = 400


class EmptyQuery(FootnoteError):
    """The question is empty after trimming whitespace."""

    status = 400


class QueryTooLong(FootnoteError):
    """The question is longer than the configured limit."""

    status = 400


class DocumentNotFound(FootnoteError):
    """No indexed document has the requested id."""

    status = 404


class ConfigError(FootnoteError):
    """A setting has a value Footnote cannot use."""

    status = 500


class UploadRejected(FootnoteError):
    """An uploaded file's name or content cannot be accepted."""

    status = 400


class UploadTooLarge(UploadRejected):
    """An uploaded file is over the size limit."""

    status = 413


class JobRunning(FootnoteError):
    """A reindex is already running; its status can be read, not a second one started."""

    status = 409


class QuestionTimeout(FootnoteError):
    """Searching and reading one question took longer than the `question_seconds` setting."""

    status = 503
