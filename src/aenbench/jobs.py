"""Set-up shared by the Snakemake job scripts: one torch thread per job and logs to the rule's log."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any


def setup_job(smk: Any, torch: bool = False) -> None:
    """Pin the job to ``smk.threads`` threads (1 by default: two threads ran 2–9× slower on the
    2-core machines) and send stdout/stderr, progress bars included, to the rule's log.

    ``torch=True`` (jobs that train or evaluate SAEs) also imports torch and sets its thread
    count; the table and figure jobs leave it out, so they do not pay its import."""
    threads = str(getattr(smk, "threads", 1) or 1)
    os.environ.setdefault("OMP_NUM_THREADS", threads)
    os.environ.setdefault("MKL_NUM_THREADS", threads)
    if torch:
        import torch as _torch

        _torch.set_num_threads(int(threads))
    if smk.log:
        stream = open(smk.log[0], "w", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stdout = sys.stderr = stream
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s", force=True)
