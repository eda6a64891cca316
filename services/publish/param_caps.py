"""Caps on the parameters of the open-data APIs (REST and CKAN). Pure.

Every parameter the APIs read has a size: the work a request costs grows with its text and lists, so
without caps one request could hold a worker for seconds. The caps sit far above any real use (a
dataset has tens of fields; a name or key is tens of characters). A request body has its own cap,
enforced for every service before parsing (``cityos.kernel.http_limits``).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PARAMETERS = 50  # parameters in one request
MAX_NAME_LENGTH = 200  # characters of a parameter's name (a property name, with its [op])
MAX_TEXT_LENGTH = 2_000  # characters of any one value
MAX_LIST_ITEMS = 100  # names in a list parameter (fields, sort), values of one filter
# Values of all filters of one request together: each is a comparison the query is compiled with,
# so this bounds a request's database work whatever the number of filters.
MAX_FILTER_VALUES = 100
# Parameters that hold comma-separated lists on the REST API.
LIST_PARAMETERS = frozenset({"fields", "sort"})


@dataclass(frozen=True, slots=True)
class OverCap:
    """A parameter over its cap: which one, and the refusal in English and Japanese."""

    parameter: str
    problem: str


def too_many_parameters(count: int) -> OverCap | None:
    if count <= MAX_PARAMETERS:
        return None
    return OverCap("request", f"at most {MAX_PARAMETERS} parameters / パラメータは {MAX_PARAMETERS} 個まで")


def text_over_cap(parameter: str, text: str, cap: int = MAX_TEXT_LENGTH) -> OverCap | None:
    if len(text) <= cap:
        return None
    return OverCap(
        parameter, f"{parameter} is too long: at most {cap} characters / {parameter} は {cap} 文字まで"
    )


def list_over_cap(
    parameter: str, count: int, cap: int = MAX_LIST_ITEMS, *, what: tuple[str, str] = ("values", "値")
) -> OverCap | None:
    """``what``: what is counted, in English and Japanese."""
    if count <= cap:
        return None
    return OverCap(
        parameter,
        f"{parameter} has too many {what[0]}: at most {cap} / {parameter} の{what[1]}は {cap} 個まで",
    )


def filter_values_over_cap(parameter: str, total: int) -> OverCap | None:
    if total <= MAX_FILTER_VALUES:
        return None
    return OverCap(
        parameter,
        f"too many filter values in one request: at most {MAX_FILTER_VALUES} in all "
        f"/ 1 回のリクエストのフィルタ値は合計 {MAX_FILTER_VALUES} 個まで",
    )


def query_over_cap(items: list[tuple[str, str]]) -> OverCap | None:
    """The first cap a REST query string exceeds, in the order given; None when within every cap."""
    problem = too_many_parameters(len(items))
    filter_values = 0
    for name, value in items:
        if problem is not None:
            break
        problem = text_over_cap(name[:40] + "…", name, MAX_NAME_LENGTH) or text_over_cap(name, value)
        count = value.count(",") + 1
        if problem is None and name in LIST_PARAMETERS:
            problem = list_over_cap(name, count)
        elif problem is None and name.endswith("]"):  # a filter with an operator: [in] lists values
            filter_values += count if name.endswith("[in]") else 1
            problem = filter_values_over_cap(name, filter_values)
    return problem
