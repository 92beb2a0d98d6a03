"""The worker's garbage collector: what is loaded at start is frozen, young objects are
collected less often, the older generations keep CPython's thresholds."""

import gc

from processors.worker import GC_YOUNG_THRESHOLD, tune_garbage_collector


def test_the_worker_freezes_its_start_and_collects_the_young_less_often() -> None:
    before = gc.get_threshold()
    try:
        kept = [object() for _ in range(10)]  # something alive at start
        tune_garbage_collector()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > len(kept)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
