"""Progress bars for long runs (``VAE.fit``, ``mcmc.sample``): tqdm on stderr when it is a terminal."""
from __future__ import annotations

import sys
import warnings


def progress_bar(total, progress, unit):
    """A tqdm bar on stderr if ``progress`` is truthy and stderr is a terminal; None otherwise (or without tqdm,
    with a warning)."""
    if not progress or not total or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        warnings.warn("progress bars need tqdm (pip install tqdm, or vaekernels[demo]); running without one",
                      stacklevel=3)
        return None
    return tqdm(total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)
