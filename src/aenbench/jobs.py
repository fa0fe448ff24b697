"""Set-up shared by the Snakemake job scripts: one torch thread per job and logs to the rule's log."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any


def setup_job(smk: Any) -> None:
    """Pin torch to ``smk.threads`` threads (1 by default: two threads ran 2–9× slower on the
    2-core machines) and send stdout/stderr, progress bars included, to the rule's log."""
    threads = str(getattr(smk, "threads", 1) or 1)
    os.environ.setdefault("OMP_NUM_THREADS", threads)
    os.environ.setdefault("MKL_NUM_THREADS", threads)
    import torch

    torch.set_num_threads(int(threads))
    if smk.log:
        stream = open(smk.log[0], "w", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stdout = sys.stderr = stream
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s", force=True)
