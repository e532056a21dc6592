"""A flame graph (SVG) from py-spy's collapsed stacks, so that one ``py-spy record --format raw`` gives both the
picture and the numbers (``bench.profile_top``): the widths are shares of the samples, a frame's tooltip says
how many, and frames are coloured by whose code they are (the same owners as ``profile_top``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from bench.profile_top import frame_name, owner

WIDTH = 1200.0
ROW = 16
MIN_WIDTH = 0.3  # px: narrower frames are left out (they would not show)
COLOURS = {
    "minsheng": "#e8743b",
    "database driver (asyncpg)": "#4c9f70",
    "SQLAlchemy": "#8cc084",
    "pydantic": "#c9a227",
    "web framework (FastAPI, Starlette)": "#5b8def",
    "HTTP server (uvicorn, httptools)": "#9bb7f0",
    "logging": "#b07cc6",
    "metrics (prometheus_client)": "#d4a5e0",
}
OTHER = "#bbbbbb"


@dataclass
class Node:
    samples: int = 0
    children: dict[str, Node] = field(default_factory=dict)


def tree(lines: list[str]) -> Node:
    root = Node()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        root.samples += n
        node = root
        for frame in stack.split(";"):
            node = node.children.setdefault(frame_name(frame), Node())
            node.samples += n
    return root


def render(lines: list[str], title: str) -> str:
    root = tree(lines)
    total = max(root.samples, 1)
    rects: list[str] = []
    depth_max = 0

    def walk(node: Node, name: str, x: float, depth: int) -> None:
        nonlocal depth_max
        width = WIDTH * node.samples / total
        if width < MIN_WIDTH:
            return
        depth_max = max(depth_max, depth)
        y = depth * ROW
        tip = escape(f"{name} — {node.samples} samples, {100 * node.samples / total:.1f} %")
        label = escape(name[: int(width / 7)]) if width > 35 else ""
        colour = COLOURS.get(owner(name), OTHER)
        rects.append(
            f'<g><title>{tip}</title><rect x="{x:.1f}" y="{{y{y}}}" width="{width:.1f}" height="{ROW - 1}" '
            f'fill="{colour}"/><text x="{x + 3:.1f}" y="{{t{y}}}">{label}</text></g>'
        )
        for child_name, child in sorted(node.children.items()):
            walk(child, child_name, x, depth + 1)
            x += WIDTH * child.samples / total

    x = 0.0
    for name, child in sorted(root.children.items()):
        walk(child, name, x, 0)
        x += WIDTH * child.samples / total
    height = (depth_max + 1) * ROW + 40
    body = "\n".join(rects)
    # Flames grow upwards: depth 0 at the bottom.
    for depth in range(depth_max + 1):
        y = depth * ROW
        body = body.replace(f"{{y{y}}}", f"{height - 10 - (depth + 1) * ROW}")
        body = body.replace(f"{{t{y}}}", f"{height - 10 - depth * ROW - 4}")
    legend = " · ".join(f'<tspan fill="{c}">■</tspan> {escape(n)}' for n, c in COLOURS.items())
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0f}" height="{height}" '
        f'font-family="monospace" font-size="11">\n'
        f'<text x="4" y="14" font-size="13">{escape(title)} ({total} samples)</text>\n'
        f'<text x="4" y="28" font-size="10">{legend} · <tspan fill="{OTHER}">■</tspan> other</text>\n'
        f"{body}\n</svg>\n"
    )
