"""PageDwell: the dwell aggregate of one page in one window, on ``beckon.dwell``.

An output for dashboards and other consumers, so the model is frozen and
``extra="ignore"`` (a newer worker may add fields). Keyed on the topic by the JSON array
``[site_id, page, window start in epoch ms]``; the latest record of a key is the whole
aggregate (the topic is compacted), and a tombstone removes a window past retention.
What each count means is in ``streams/core/dwell.py`` and ``docs/worker.md``.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.invitations import Instant

Count = Annotated[int, Field(ge=0)]


class PageDwell(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    site_id: str
    page: str = Field(description="the URL without query and fragment")
    window_start: Instant
    window_end: Instant
    page_views: Count = Field(description="page views that started in the window")
    visitors: Count = Field(description="distinct visitors with a page view in the window")
    dwell_ms: Count = Field(description="time visitors were present on the page in the window")
    ended: Count = Field(description="page views that ended in the window")
    typical_dwell_ms: Count | None = Field(
        description="median dwell of the page views that ended in the window (bucket floor)"
    )
    histogram: dict[str, Count] = Field(
        description="ended page views by dwell bucket: seconds below 100, two digits above"
    )


PAGE_DWELL: Final = TypeAdapter(PageDwell)
