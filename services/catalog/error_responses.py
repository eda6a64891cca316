"""The refusals the catalog's routes answer, documented once so every router's OpenAPI description
lists the codes its handlers raise (a client generated from the description then knows them)."""

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """Why a request was refused: a sentence (English and Japanese where the handler has both), or a
    structured reason."""

    detail: Any = Field(description="why the request was refused")


_DESCRIPTIONS = {
    400: "the request cannot be carried out as given (a malformed id, instant or selection)",
    403: "the caller may not do this",
    404: "no such dataset, version, credential, subscription, proposal or key",
    409: "the request conflicts with the current state",
    503: "a dependency (Kafka) did not take the change; nothing was changed",
}


def refusals(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router that answers these refusal codes."""
    return {code: {"model": ErrorDetail, "description": _DESCRIPTIONS[code]} for code in codes}
