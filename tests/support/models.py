"""The derived embedding models (the int8 export, the static model) in a test run's own cache folder."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

# Where `make setup` builds them: the user's cache, which a test run does not otherwise read.
SETUP_MODELS = Path(os.path.expanduser("~")) / ".cache" / "empathy-study" / "models"


def model_in_run_cache(target, name: str, marker: str, build, built_marker: str | None = None) -> None:
    """Put a derived model (the int8 export, the static model) into this run's cache folder `target`
    unless its `marker` file is there: copied from the user's cache when `make setup` built it there
    (`built_marker`, default `marker`, says it is whole), else built now by `build(target)`; the time
    it took is printed."""
    built = SETUP_MODELS / name
    start = time.perf_counter()
    if not (target / marker).exists():
        if (built / (built_marker or marker)).exists():
            shutil.copytree(built, target)
        else:
            build(target)
    print(f"{name} ready in {time.perf_counter() - start:.1f} s")
