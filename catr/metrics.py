"""Caption metrics that need no external scorer: exact match and per-word accuracy against the references (word
pieces, compared position by position), and, for the caption world, whether a caption names every object."""
import re


def exact_match(generated: list, references: list[list]) -> bool:
    """``generated`` equals one of the references (sequences of word pieces or ids, [CLS]/[SEP] excluded)."""
    return any(list(generated) == list(r) for r in references)


def word_accuracy(generated: list, references: list[list]) -> float:
    """Best over references of the fraction of positions where the words agree, over the longer length."""
    def acc(r):
        return sum(a == b for a, b in zip(generated, r)) / max(len(generated), len(r), 1)
    return max((acc(r) for r in references), default=0.0)


def object_pairs(caption: str, colours, shapes) -> list[tuple[str, str]]:
    """(colour, shape) for every colour word directly followed by a shape word, in caption order."""
    words = re.findall(r"[a-z]+", caption.lower())
    return [(a, b) for a, b in zip(words, words[1:]) if a in colours and b in shapes]


def names_objects(caption: str, objects: list[dict], colours, shapes) -> bool:
    """The caption names exactly the scene's objects, each with its own colour and shape (``objects``: the caption
    world's ``[{"words": [colour, shape], ...}]``), whatever the order."""
    return sorted(object_pairs(caption, colours, shapes)) == sorted(tuple(o["words"]) for o in objects)
