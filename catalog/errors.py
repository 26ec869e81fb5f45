"""Refusals the catalogue gives, each with the HTTP status its API answers with."""

from __future__ import annotations


class CatalogError(Exception):
    """A refused action; the message names the thing, the field and the rule."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Unauthenticated(CatalogError):
    status = 401


class Forbidden(CatalogError):
    """The actor's role or department does not allow this (least privilege)."""

    status = 403


class NotFound(CatalogError):
    status = 404


class Conflict(CatalogError):
    """The thing is in a state where this transition is not allowed."""

    status = 409


class Invalid(CatalogError):
    """The input breaks a rule of the catalogue."""

    status = 422


class Unavailable(CatalogError):
    """A system the catalogue drives (Trino) did not take the change; retried later."""

    status = 502
