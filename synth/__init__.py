"""Generated data for the demo, the tests and the benchmarks: pet-style image folders (``pets``) and the caption
world (``captionworld``), drawn with the same shapes (``shapes``). Apart from the model packages, as DETR keeps
``datasets/`` apart from ``models/``."""
