"""Make DunningSans.ttf and DunningSans-Bold.ttf: the part of DejaVu Sans letters use.

fpdf2 (`letters/render.py`) reads a whole font to subset it into every PDF. The
full DejaVu Sans has ~6200 glyphs, mostly for scripts a dunning letter hardly ever shows;
reading and subsetting them was two thirds of the time to render a letter. These files
keep 1102 glyphs: the code points in RANGES and every character of the letter templates
(`letters/templates/*.toml`; the script stops if DejaVu Sans lacks one). The
renderer draws a letter with a character outside them again in the full DejaVu Sans,
which stays beside them.

Source: DejaVuSans.ttf and DejaVuSans-Bold.ttf in this folder (DejaVu Sans 2.37, see
LICENSE). Made with fontTools 4.68.0 (also written into the fonts' version string); the
same source and fontTools version give the same bytes. Run from the repository root
after changing RANGES or the templates, and commit the two TTF files:

    python letters/fonts/make_subset.py

Kept unchanged for those glyphs: outlines, advance widths (text is laid out exactly as in
DejaVu Sans), hinting, the font-wide metrics and bounding box (so fpdf2 writes the same
font descriptor). Each glyph's own bounding box is recalculated, as fontTools does when
it writes a font (a few in DejaVu Sans are a unit off): the renderer takes a PDF's
font-wide box from them. Dropped: the OpenType layout tables (GSUB, GPOS, GDEF, MATH),
`kern`, `hdmx` and FontForge's timestamp (FFTM), as fpdf2 neither shapes nor kerns our
text (and drops the layout tables from every PDF anyway); one of the two identical
character maps (Macintosh Unicode), and the Macintosh copies of the names.

Names: the Bitstream Vera license lets modified versions of its fonts be distributed only
under names without "Bitstream" or "Vera"; the Arev license the same for "Arev" and
"Tavmjong Bah"; DejaVu's own changes are in the public domain. "DejaVu Sans" contains none
of those words, but a subset is not DejaVu Sans, so the family is "Dunning Sans" (checked
below). The copyright and license notices (name IDs 0, 13, 14) are kept unchanged, and
LICENSE ships beside the fonts.
"""

from __future__ import annotations

import tomllib
import unicodedata
from pathlib import Path

import fontTools
from fontTools import subset
from fontTools.ttLib import TTFont

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parent / "templates"
FAMILY = "Dunning Sans"

#: (first, last) code points, both included; what the font lacks is skipped. Every glyph
#: costs time in every letter (fpdf2 reads the whole font to subset it), so this is what
#: letters to customers in Europe need, not what DejaVu Sans has: a letter with anything
#: else (Vietnamese, Armenian, Hebrew, combining accents...) is set in the full fonts.
RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0020, 0x007E, "Basic Latin"),
    (0x00A0, 0x00FF, "Latin-1 Supplement"),
    (0x0100, 0x017F, "Latin Extended-A"),
    (0x0180, 0x024F, "Latin Extended-B (Romanian comma below)"),
    (0x0370, 0x03FF, "Greek and Coptic"),
    (0x0400, 0x04FF, "Cyrillic"),
    (0x2000, 0x206F, "General Punctuation (dashes, quotes, narrow no-break space)"),
    (0x20A0, 0x20CF, "Currency Symbols"),
    (0x2212, 0x2212, "Minus sign (negative numbers in some locales)"),
    (0xFFFD, 0xFFFD, "Replacement character"),
)

#: source file -> subset file, subfamily name
FONTS = (
    ("DejaVuSans.ttf", "DunningSans.ttf", "Book"),
    ("DejaVuSans-Bold.ttf", "DunningSans-Bold.ttf", "Bold"),
)


def template_text() -> set[int]:
    """Every character of the strings in the letter templates, but control characters."""
    chars: set[int] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            chars.update(ord(c) for c in value if unicodedata.category(c)[0] != "C")

    for path in sorted(TEMPLATES.glob("*.toml")):
        walk(tomllib.loads(path.read_text(encoding="utf-8")))
    return chars


def unicodes() -> list[int]:
    wanted = {cp for first, last, _ in RANGES for cp in range(first, last + 1)}
    return sorted(wanted | template_text())


def rename(font: TTFont, subfamily: str) -> None:
    full = FAMILY if subfamily == "Book" else f"{FAMILY} {subfamily}"
    postscript = FAMILY.replace(" ", "") + ("" if subfamily == "Book" else f"-{subfamily}")
    source = f"{font['name'].getDebugName(4)} {font['name'].getDebugName(5)}"
    names = {
        1: FAMILY,
        2: subfamily,
        3: f"{full} (subset of {source})",
        4: full,
        5: f"{font['name'].getDebugName(5)}; subset by make_subset.py, "
           f"fontTools {fontTools.version}",
        6: postscript,
        10: f"A subset of {source} for dunning letters: Latin, Greek, Cyrillic, "
            "punctuation and currency symbols.",
        16: FAMILY,
        17: subfamily,
    }
    table = font["name"]
    table.names = [n for n in table.names if n.nameID not in names]
    for name_id, text in names.items():
        table.setName(text, name_id, 3, 1, 0x409)  # Windows, Unicode BMP, English (US)
    table.names.sort(key=lambda n: (n.platformID, n.platEncID, n.langID, n.nameID))
    bad = [n.nameID for n in table.names
           if n.nameID in (1, 3, 4, 6, 16) and any(
               word in n.toUnicode() for word in ("Bitstream", "Vera", "Arev", "Tavmjong"))]
    assert not bad, f"license: the names {bad} must not say Bitstream, Vera, Arev, Tavmjong"


def make(source: Path, target: Path, subfamily: str, codepoints: list[int]) -> int:
    # recalcBBoxes=False: the font-wide bounding box (head) and maxima (maxp, hhea) stay
    # those of the full font, so fpdf2 writes the same font descriptor into the PDF.
    font = TTFont(source, recalcTimestamp=False, recalcBBoxes=False)
    cmap = font.getBestCmap()
    lacking = sorted(cp for cp in template_text() if cp not in cmap)
    if lacking:
        raise SystemExit(f"{source.name} lacks template characters: "
                         + " ".join(f"U+{cp:04X}" for cp in lacking))
    options = subset.Options()
    options.name_IDs = ["*"]  # keep every name (copyright, license), renamed below
    options.name_languages = [0x409]  # English (US), DejaVu Sans's only Windows names
    options.name_legacy = False  # Windows names only, like the cmap below
    options.notdef_outline = True
    options.recommended_glyphs = True
    options.glyph_names = True
    options.layout_features = []
    options.drop_tables += ["FFTM", "GDEF", "GPOS", "GSUB", "MATH", "kern", "hdmx"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=codepoints)
    subsetter.subset(font)
    # Each glyph's own bounding box as fontTools computes it (DejaVu Sans has some off by
    # a unit): the renderer takes the font-wide box of a PDF's glyphs from these.
    glyf = font["glyf"]
    for name in font.getGlyphOrder():
        glyf[name].recalcBounds(glyf)
    # One character map (Windows, Unicode BMP) instead of two identical ones: half the
    # work to read it, and every PDF reader and system takes it.
    cmap = font["cmap"]
    cmap.tables = [t for t in cmap.tables if (t.platformID, t.platEncID) == (3, 1)]
    assert cmap.tables, f"{source.name}: no Windows Unicode BMP cmap"
    rename(font, subfamily)
    font.save(target)
    return len(font.getGlyphOrder())


def main() -> None:
    print(f"fontTools {fontTools.version}")
    codepoints = unicodes()
    for source, target, subfamily in FONTS:
        glyphs = make(HERE / source, HERE / target, subfamily, codepoints)
        size = (HERE / target).stat().st_size
        print(f"{target}: {glyphs} glyphs, {size // 1024} KiB, from {source}")


if __name__ == "__main__":
    main()
