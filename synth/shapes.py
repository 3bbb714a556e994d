"""The shapes and colours both generators draw: the pet-style classes and the caption world's objects."""
import math

from PIL import ImageDraw

# Few, very different shapes and many saturated colours: a tiny ViT trained from scratch on CPU learns
# colour within an epoch or two and these shapes within a few minutes.
SHAPES = ("disc", "square", "triangle", "cross")
COLOURS = ((230, 40, 40), (40, 200, 60), (50, 90, 230), (240, 210, 30), (220, 50, 200), (30, 210, 220),
           (245, 140, 20), (120, 40, 180), (170, 240, 60), (255, 150, 190))
COLOUR_NAMES = ("red", "green", "blue", "yellow", "pink", "cyan", "orange", "purple", "lime", "rose")  # COLOURS'


def _triangle(cx, cy, r):
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, colour, box) -> None:
    """One of SHAPES in ``colour``, inside the square ``box`` = (x0, y0, x1, y1) (the caption world uses it too)."""
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if shape == "disc":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle((x0 + r * 0.15, y0 + r * 0.15, x1 - r * 0.15, y1 - r * 0.15), fill=colour)
    elif shape == "cross":
        w = r * 0.3
        draw.rectangle((cx - w, y0, cx + w, y1), fill=colour)
        draw.rectangle((x0, cy - w, x1, cy + w), fill=colour)
    else:
        draw.polygon(_triangle(cx, cy, r), fill=colour)
