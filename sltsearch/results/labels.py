"""Where a plot's text labels go: beside their points, on none of the plotted points, lines, the legend or
each other, and inside the axes. Pure geometry in pixels (origin bottom left), shared by the PNG and the
HTML renderer of `sltsearch.results.plots`.

Each label tries offsets from its point, nearest first, in eight directions; the first that touches nothing
wins. When every offset touches something, the one touching the fewest things (then the nearest) is taken:
a label is never dropped, and `place` says how many still touch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]
Segment = tuple[Point, Point]

DISTANCES = (5.0, 10.0, 18.0, 30.0, 46.0, 66.0)  # pixels from the point to the label's nearest corner
# (x direction, y direction): right-above first, as a reader expects a point's label
DIRECTIONS = ((1, 1), (-1, 1), (1, -1), (-1, -1), (0, 1), (0, -1), (1, 0), (-1, 0))


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in pixels."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def within(self, other: Box) -> bool:
        return other.x0 <= self.x0 and self.x1 <= other.x1 and other.y0 <= self.y0 and self.y1 <= other.y1

    def crosses(self, segment: Segment) -> bool:
        """The segment passes through the box (Liang-Barsky clipping)."""
        (ax, ay), (bx, by) = segment
        low, high = 0.0, 1.0
        edges = ((ax - bx, ax - self.x0), (bx - ax, self.x1 - ax), (ay - by, ay - self.y0), (by - ay, self.y1 - ay))
        for p, q in edges:
            if p == 0:
                if q < 0:
                    return False
                continue
            t = q / p
            if p < 0:
                low = max(low, t)
            else:
                high = min(high, t)
            if low > high:
                return False
        return True

    def grown(self, by: float) -> Box:
        return Box(self.x0 - by, self.y0 - by, self.x1 + by, self.y1 + by)


@dataclass(frozen=True)
class Placement:
    """Where a label goes: its offset from its point in pixels, how it is anchored there, and its box."""

    dx: float
    dy: float
    ha: str  # "left" | "right" | "center": which side of the text sits at the offset
    va: str  # "bottom" | "top" | "center"
    box: Box
    touching: int  # things it still touches (0 when a free place was found)


def _candidate(point: Point, size: tuple[float, float], direction: tuple[int, int], distance: float) -> Placement:
    (px, py), (w, h), (sx, sy) = point, size, direction
    dx, dy = sx * distance, sy * distance
    x0 = px + dx if sx > 0 else px + dx - w if sx < 0 else px - w / 2
    y0 = py + dy if sy > 0 else py + dy - h if sy < 0 else py - h / 2
    ha = "left" if sx > 0 else "right" if sx < 0 else "center"
    va = "bottom" if sy > 0 else "top" if sy < 0 else "center"
    return Placement(dx, dy, ha, va, Box(x0, y0, x0 + w, y0 + h), 0)


def place(
    anchors: Sequence[Point],
    sizes: Sequence[tuple[float, float]],
    area: Box,
    obstacles: Sequence[Box] = (),
    segments: Sequence[Segment] = (),
    gap: float = 2.0,
) -> list[Placement]:
    """A place for each label (its point ``anchors[i]``, its text ``sizes[i]`` wide and high) inside ``area``,
    clear by ``gap`` pixels of the ``obstacles`` (plotted points, the legend), the ``segments`` (plotted lines)
    and the labels placed before it."""
    placed: list[Placement] = []
    for point, size in zip(anchors, sizes, strict=True):
        best: Placement | None = None
        for distance in DISTANCES:
            for direction in DIRECTIONS:
                option = _candidate(point, size, direction, distance)
                padded = option.box.grown(gap)
                touching = (
                    (0 if option.box.within(area) else 100)  # outside the axes is worse than anything inside
                    + sum(padded.overlaps(o) for o in obstacles)
                    + sum(padded.crosses(s) for s in segments)
                    + sum(padded.overlaps(p.box) for p in placed)
                )
                if best is None or touching < best.touching:
                    best = Placement(option.dx, option.dy, option.ha, option.va, option.box, touching)
                if touching == 0:
                    break
            if best is not None and best.touching == 0:
                break
        assert best is not None
        placed.append(best)
    return placed


def step_vertices(xs: Sequence[float], ys: Sequence[float], post: bool) -> tuple[list[float], list[float]]:
    """The corners of a step line through the points (sorted by x): ``post`` holds each y until the next x,
    else each next y is reached at the current x (matplotlib's ``steps-post`` / ``steps-pre``)."""
    if not xs:
        return [], []
    out_x, out_y = [xs[0]], [ys[0]]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        corner = (x1, y0) if post else (x0, y1)
        out_x += [corner[0], x1]
        out_y += [corner[1], y1]
    return out_x, out_y


def segments_of(points: Sequence[Point]) -> list[Segment]:
    """The segments of the polyline through ``points``."""
    return list(zip(points, points[1:], strict=False))
