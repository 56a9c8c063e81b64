"""PDFs written at test time with fpdf2: small born-digital papers whose exact text the tests know.

Generated rather than checked in, so the repository holds no binaries and each test states
the words it expects.
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

NUMBERED = [
    ("Introduction", [
        "Tide mills were common on European coasts in the Middle Ages [1]. "
        "They stored sea water behind a dam and released it through a wheel at low tide [2, 3].",
    ]),
    ("Results", [
        "The mill at Woodbridge still turns on open days [3]. Its wheel was rebuilt in 1970.",
    ]),
]
NUMBERED_REFS = [
    "[1] Reed, J. (2010). Tide mills of Europe. Mill Review 4, 10-30.",
    "[2] Hale, A. (2001). Lamps and Oils. Sea Press.",
    "[3] Moss, C. (1999). Keepers of the Reef. Dock Books.",
]
AUTHOR_YEAR = [
    ("Background", [
        "Storage ponds were dug by hand (Reed 2010). Reed and Hale (2001, p. 4) describe the sluice gates. "
        "Other work disagrees (Moss 1999).",
    ]),
]
AUTHOR_YEAR_REFS = [
    "Hale, A. and Reed, J. (2001). Gates and sluices. Sea Press.",
    "Moss, C. (1999). Keepers of the Reef. Dock Books.",
    "Moss, D. (1999). Another Moss. Dock Books.",
    "Reed, J. (2010). Tide mills of Europe. Mill Review 4, 10-30.",
    "Reed, J. and Hale, A. (2001). Mill ponds. Sea Press.",
]


def paper(path: Path, sections: list[tuple[str, list[str]]], refs: list[str], page_break: bool = True,
          title: str = "Tide Mills") -> Path:
    """A paper: title, sections of body text (each on a new page when `page_break`), then References."""
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    for i, (heading, paragraphs) in enumerate(sections):
        if page_break and i:
            pdf.add_page()
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        for p in paragraphs:
            pdf.multi_cell(0, 6, p, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 10, "References", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for r in refs:
        pdf.multi_cell(0, 5, r, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def no_text_layer(path: Path) -> Path:
    """A scanned-looking PDF: drawings only, no text objects."""
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    pdf.output(str(path))
    return path


def encrypted(path: Path) -> Path:
    """A PDF that needs a password to open."""
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.cell(0, 10, "Secret text.")
    pdf.output(str(path))
    return path
