"""What reading one upload may cost, whatever its bytes claim: bounds every reader keeps.

A small file can stand for a huge one (a DOCX is a ZIP: 3 MB inflated to 1 GB of XML), and a
plain one can be cut into millions of tiny pieces (20 MB of blank-line-separated letters). The
readers therefore produce their blocks one by one through a `Budget`, which refuses the
document the moment it passes a bound, and which the indexer can stop from outside (the
document was deleted, or ran out of time): the work ends at the next block, not at the end of
the file. The bounds are sized so that reading any accepted upload stays well under 500 MB of
memory on the reference machine (see RELIABILITY numbers in docs/knowledge.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from alicerce.knowledge.extract.blocks import Block, ExtractionError


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    max_blocks: int = 250_000  # paragraphs, rows or records
    max_text_chars: int = 32 * 1024 * 1024  # the extracted text, all blocks together
    max_expanded_bytes: int = 100 * 1024 * 1024  # what a DOCX's XML may inflate to
    max_zip_entries: int = 2_000  # files in a DOCX package
    # XML elements in a DOCX's main part: each costs ~2 us of Python in the parse events, so
    # this bounds the parse at a few seconds (a 1,000-page Word file has ~500,000)
    max_xml_elements: int = 2_000_000
    max_pdf_pages: int = 2_000
    max_nesting: int = 100  # JSON levels


DEFAULT_LIMITS = ExtractionLimits()


class ExtractionStopped(Exception):
    """Reading was stopped from outside (`Budget.stop`): the caller knows why."""


class Budget:
    """Counts what a reader has produced; refuses past the limits, ends when stopped."""

    def __init__(
        self, limits: ExtractionLimits = DEFAULT_LIMITS, stop: threading.Event | None = None
    ) -> None:
        self.limits = limits
        self.blocks = 0
        self.chars = 0
        self._stop = stop or threading.Event()

    def check(self) -> None:
        """Called by readers at their own steps (a page, a fed chunk): ends a stopped read."""
        if self._stop.is_set():
            raise ExtractionStopped

    def add(self, block: Block) -> Block:
        self.check()
        self.blocks += 1
        self.chars += len(block.text)
        if self.blocks > self.limits.max_blocks:
            raise ExtractionError(
                f"the document has more than {self.limits.max_blocks:,} paragraphs, rows or "
                "records; split it into smaller documents"
            )
        if self.chars > self.limits.max_text_chars:
            raise ExtractionError(
                f"the document has more than {_mb(self.limits.max_text_chars)} of text; "
                "split it into smaller documents"
            )
        return block


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"
