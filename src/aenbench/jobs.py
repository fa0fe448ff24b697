"""Set-up shared by the Snakemake job scripts: one torch thread per job, logs to the rule's log,
and what the terminal sees.

The terminal (the stderr Snakemake gave the job) gets one summary line per SAE (the
:data:`SUMMARY_LOGGER` lines: trained, evaluated, harvested) from every job. A job that holds the
workflow's terminal lock (``.snakemake/aenbench-terminal.lock``; the first job to start while no
other holds it, so always a job run on its own) also shows its progress bars, ETA included, and
its log lines there, when that stderr is a terminal. Everything still goes to the rule's log.

A job that fails with an exception also writes the error's last lines to that stderr (the
exception's type and message, the file and line of a syntax error, the frame it was raised in)
and the log's path, so the terminal running ``snakemake`` shows the real error and not only
Snakemake's ``CalledProcessError``; the full traceback stays in the log.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Sequence

SUMMARY_LOGGER = "aenbench.summary"
TERMINAL_LOCK = Path(".snakemake") / "aenbench-terminal.lock"
_lock: IO[str] | None = None  # held for the job's lifetime
# the summary lines are always emitted, whatever the root logger's level (a library caller's too)
logging.getLogger(SUMMARY_LOGGER).setLevel(logging.INFO)


class _Tee:
    """A text stream that writes to the log file and to the terminal (progress bars included)."""

    def __init__(self, log: IO[str], terminal: IO[str]):
        self.log, self.terminal = log, terminal

    def write(self, text: str) -> int:
        self.terminal.write(text)
        return self.log.write(text)

    def flush(self) -> None:
        self.log.flush()
        self.terminal.flush()

    def isatty(self) -> bool:  # tqdm draws its bar (with ETA) when this is a terminal
        return self.terminal.isatty()

    def fileno(self) -> int:
        return self.log.fileno()

    @property
    def encoding(self) -> str:  # tqdm draws unicode blocks for a UTF-8 terminal
        return getattr(self.terminal, "encoding", None) or "utf-8"


def _take_terminal() -> bool:
    """True when this job got the workflow's terminal lock (non-blocking; released at exit)."""
    global _lock
    try:
        TERMINAL_LOCK.parent.mkdir(exist_ok=True)
        handle = open(TERMINAL_LOCK, "a")  # noqa: SIM115 - held until the job exits
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    _lock = handle
    return True


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions it was raised from (``__cause__`` / ``__context__``), outermost first."""
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)  # type: ignore[assignment]
    return seen


def error_summary(err: BaseException, log: str | None = None, rule: str | None = None) -> str:
    """The last lines of a failed job for the terminal: ``ExcType: message`` of the error (and of
    the errors it was raised from), the file, line and text of a syntax error among them, the
    frame the error was raised in, and where the whole traceback is."""
    lines = []
    for i, e in enumerate(_chain(err)):
        message = str(e).strip().splitlines()
        head = f"{type(e).__name__}: {message[0]}" if message else type(e).__name__
        lines.append(("  raised from " if i else "") + head)
        lines.extend(f"    {m}" for m in message[1:4])
        if isinstance(e, SyntaxError) and e.filename:
            lines.append(f'    File "{e.filename}", line {e.lineno}' + (f": {e.text.strip()}" if e.text else ""))
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith("<")]
    if frames:
        last = frames[-1]
        lines.append(f'  at File "{last.filename}", line {last.lineno}, in {last.name}')
    if log:
        lines.append(f"  full traceback: {log}")
    return f"aenbench job failed{f' (rule {rule})' if rule else ''}: " + "\n".join(lines)


def _report_failures(terminal: IO[str], log: str | None, rule: str | None) -> None:
    """Also write a failing job's error summary to ``terminal`` (see :func:`error_summary`)."""
    previous = getattr(sys.excepthook, "aenbench_previous", sys.excepthook)  # set up twice: replace, not chain

    def hook(kind: type[BaseException], err: BaseException, tb: TracebackType | None) -> None:
        previous(kind, err, tb)  # the whole traceback, to the log
        if issubclass(kind, KeyboardInterrupt):
            return
        try:
            sys.stderr.flush()
            terminal.write(error_summary(err, log, rule) + "\n")
            terminal.flush()
        except Exception:  # noqa: BLE001 - the traceback is in the log already
            pass

    hook.aenbench_previous = previous  # type: ignore[attr-defined]
    sys.excepthook = hook


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
    terminal = sys.stderr
    real_stderr = terminal
    if smk.log:
        stream: IO[str] = open(smk.log[0], "w", buffering=1)  # noqa: SIM115 - lives as long as the job
        if terminal.isatty() and _take_terminal():
            stream = _Tee(stream, terminal)  # type: ignore[assignment]
            terminal = None  # type: ignore[assignment]  # it sees everything already
        sys.stdout = sys.stderr = stream
        _report_failures(real_stderr, str(smk.log[0]), getattr(smk, "rule", None))
    else:
        terminal = None  # type: ignore[assignment]  # no log: stderr is the terminal
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s", force=True)
    summary = logging.getLogger(SUMMARY_LOGGER)
    for handler in [h for h in summary.handlers if getattr(h, "aenbench_terminal", False)]:
        summary.removeHandler(handler)
    if terminal is not None:
        handler = logging.StreamHandler(terminal)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.aenbench_terminal = True  # type: ignore[attr-defined]
        summary.addHandler(handler)


def progress(iterable: Sequence[Any], desc: str) -> Any:
    """A bar with an ETA when the job's stderr is a terminal (see the module's docstring);
    otherwise nothing (the summary lines tell)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit="sae", disable=None)


def summarise(msg: str, *args: Any) -> None:
    """One summary line (per SAE, per harvest) for the log and the terminal."""
    logging.getLogger(SUMMARY_LOGGER).info(msg, *args)
