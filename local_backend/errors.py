"""openEO API errors: an exception carrying the openEO error code and its HTTP status."""

from __future__ import annotations

import uuid

# openEO API 1.2 error codes used here, with their HTTP status.
STATUS = {
    "BadRequest": 400,
    "JsonInvalid": 400,
    "ProcessGraphMissing": 400,
    "ProcessGraphInvalid": 400,
    "ProcessUnsupported": 400,
    "ProcessParameterInvalid": 400,
    "ProcessParameterMissing": 400,
    "ProcessNamespaceInvalid": 400,
    "CollectionNotFound": 404,
    "FormatUnsupported": 400,
    "JobNotFound": 404,
    "JobNotFinished": 400,
    "JobNotStarted": 400,
    "JobLocked": 400,
    "ResultsNotFound": 404,
    "ProcessGraphNotFound": 404,
    "FileNotFound": 404,
    "NotFound": 404,
    "ConcurrentJobLimit": 400,
    "PaymentRequired": 402,
    "AuthenticationRequired": 401,
    "AuthenticationSchemeInvalid": 403,
    "CredentialsInvalid": 403,
    "TokenInvalid": 403,
    "PermissionsInsufficient": 403,
    "MethodNotAllowed": 405,
    "TooManyRequests": 429,
    "RangeNotSatisfiable": 416,
    "ProcessGraphComplexity": 400,
    "FormatUnsuitable": 400,
    "OutOfMemory": 500,
    "Internal": 500,
    "FeatureUnsupported": 501,
    "ServiceUnavailable": 503,
    "BadGateway": 502,
}


class ApiError(Exception):
    """An error answered as an openEO JSON error body."""

    def __init__(self, code: str, message: str, status: int | None = None, headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS.get(code, 400)
        self.headers = headers or {}
        self.id = uuid.uuid4().hex[:16]

    def body(self) -> dict:
        return {"id": self.id, "code": self.code, "message": self.message, "links": []}


class JobError(Exception):
    """A job ends in error; ``code`` is logged and shown in the job's error log entry."""

    def __init__(self, message: str, code: str = "Internal"):
        super().__init__(message)
        self.code = code
