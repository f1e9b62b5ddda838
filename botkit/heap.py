"""The garbage collector in a long-running process: the objects start-up made kept out
of its full collections."""

from __future__ import annotations

import gc


def freeze() -> None:
    """Collect what start-up left behind, then freeze every object alive (modules, bots,
    the app) into the collector's permanent generation.

    A full collection walks every tracked object: with start-up's in view, each took
    33-52 ms here, a pause for every request and reply under way, every few seconds
    under load. Frozen, they are never walked again: one that becomes garbage is still
    freed by its count of references, but never if it is part of a cycle (so not
    under --reload, whose old modules are). `/metrics` shows how many are frozen
    (`python_gc_objects_frozen`)."""
    gc.collect()
    gc.freeze()
