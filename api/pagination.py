"""Offset pagination for list endpoints: ``limit`` and ``offset`` in, headers out.

Bodies stay plain JSON arrays; the total is in ``X-Total-Count`` and the next page's
URL in ``Link: <...>; rel="next"`` (RFC 8288), as GitHub's API does. The journey, the
one list that grows without bound, pages by cursor instead (``next_cursor``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request, Response

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """Which slice of a list to return."""

    limit: int
    offset: int


def page_request(
    limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="items to skip")] = 0,
) -> PageRequest:
    """The page query parameters."""
    return PageRequest(limit, offset)


PageDep = Annotated[PageRequest, Depends(page_request)]


def paginate(
    items: Sequence[T], page: PageRequest, request: Request, response: Response
) -> list[T]:
    """The requested slice of ``items``, with the total and the next page's link as headers."""
    response.headers["X-Total-Count"] = str(len(items))
    end = page.offset + page.limit
    if end < len(items):
        following = request.url.include_query_params(offset=end, limit=page.limit)
        response.headers["Link"] = f'<{following}>; rel="next"'
    return list(items[page.offset : end])
