"""py-spy profiles: top functions by own and total time, and a flame graph (SVG).

`py-spy record --format raw` writes collapsed stacks (`frame;frame;...;leaf count`, a
frame being `function (file:line)`). `report` turns them into a text table of the top
functions (own time: the function is the leaf; total time: it is on the stack) and an
SVG flame graph, with nothing but the standard library.

    python -m bench.profiles bench-results/run-profile.collapsed   # re-render a profile
    python -m bench.profiles FILE.collapsed --callees ProposalRun.slice store
                                           # where the time of those functions goes
"""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    """`func (path:line)` → `func (module/file.py)`, without the line."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def read(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";")]
        # py-spy puts the thread ("process ... thread ...") first when asked; drop it
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        stacks.append((frames, int(count)))
    return stacks


def top(stacks: list[tuple[list[str], int]], n: int = 25) -> tuple[int, list, list]:
    total = sum(c for _, c in stacks)
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for frames, count in stacks:
        if frames:
            own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    return total, own.most_common(n), incl.most_common(n)


def main_thread(stacks: list[tuple[list[str], int]]) -> list[tuple[list[str], int]]:
    """The event loop's stacks: those of other threads start with `Thread._bootstrap`
    (Faust runs its consumer in a thread of its own, idle in `select` most of the time)."""
    return [(f, c) for f, c in stacks if not (f and f[0].startswith("Thread._bootstrap"))]


def text(title: str, stacks: list[tuple[list[str], int]], n: int = 25) -> str:
    every = sum(c for _, c in stacks)
    stacks = main_thread(stacks)
    total, own, incl = top(stacks, n)
    idle = sum(c for f, c in stacks if f and f[-1].startswith("EpollSelector.select"))
    lines = [f"# {title}: {total} samples of the main thread (event loop), "
             f"{100 * idle / max(total, 1):.1f} % of them idle in select; "
             f"{every - total} samples of other threads left out",
             "", "## own time (function at the top of the stack)"]
    lines += [f"{100 * c / total:6.1f} %  {f}" for f, c in own]
    lines += ["", "## total time (function anywhere on the stack)"]
    lines += [f"{100 * c / total:6.1f} %  {f}" for f, c in incl]
    return "\n".join(lines) + "\n"


def flamegraph(stacks: list[tuple[list[str], int]], title: str, width: int = 1600) -> str:
    """An icicle-free, classic flame graph: roots at the bottom, one rect per frame."""
    tree: dict = {}
    for frames, count in stacks:
        node = tree
        for f in frames:
            entry = node.setdefault(f, [0, {}])
            entry[0] += count
            node = entry[1]
    total = sum(c for _, c in stacks) or 1
    depth = 1 + max((len(f) for f, _ in stacks), default=0)
    row = 16
    height = depth * row + 40
    rects: list[str] = []

    def walk(node: dict, x: float, level: int) -> None:
        for name, (count, children) in sorted(node.items()):
            w = width * count / total
            if w >= 0.5:
                y = height - (level + 1) * row - 10
                hue = 20 + (hash(name) % 40)
                label = html.escape(name)
                chars = int(w / 7)
                shown = label if len(label) <= chars else label[: max(0, chars - 2)] + ".."
                rects.append(
                    f'<g><title>{label} ({count} samples, {100 * count / total:.1f} %)</title>'
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" '
                    f'fill="hsl({hue},85%,60%)"/>'
                    + (f'<text x="{x + 2:.1f}" y="{y + 11}" font-size="11">{shown}</text>'
                       if chars > 3 else "") + "</g>")
                walk(children, x, level + 1)
            x += w

    walk(tree, 0.0, 0)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="monospace"><text x="4" y="16" font-size="14">'
            f'{html.escape(title)} ({total} samples)</text>{"".join(rects)}</svg>\n')


def report(raw: Path, out_stem: Path, title: str, n: int = 25) -> str:
    """Write `<out_stem>.txt` (top functions) and `<out_stem>.svg`; return the text."""
    stacks = read(raw)
    body = text(title, stacks, n)
    Path(str(out_stem) + "-top.txt").write_text(body)
    Path(str(out_stem) + ".svg").write_text(flamegraph(stacks, title))
    print(body)
    return body




def callees(stacks: list[tuple[list[str], int]], name: str, n: int = 15) -> list[tuple[str, float]]:
    """Where the time of `name` (a function as in the reports, or its start) goes: the share
    of the main thread's samples under each function it calls directly (own time shown as
    `(self)`)."""
    stacks = main_thread(stacks)
    total = sum(c for _, c in stacks) or 1
    out: Counter[str] = Counter()
    for frames, count in stacks:
        for i, f in enumerate(frames):
            if f.startswith(name):
                out[frames[i + 1] if i + 1 < len(frames) else "(self)"] += count
                break
    return [(f, 100 * c / total) for f, c in out.most_common(n)]


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="py-spy profile reports")
    ap.add_argument("collapsed", type=Path)
    ap.add_argument("--callees", nargs="*", default=[],
                    help="functions (or their start) whose callees to list")
    args = ap.parse_args()
    src = args.collapsed
    if not args.callees:
        report(src, src.with_name(src.stem), src.stem)
        return
    stacks = read(src)
    for name in args.callees:
        print(f"## under {name}")
        for callee, pct in callees(stacks, name):
            print(f"{pct:6.1f} %  {callee}")


if __name__ == "__main__":
    main()
