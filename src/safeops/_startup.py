"""TensorFlow's start-up, for the command line: its start-up notes are held back.

Importing TensorFlow 2.21 prints lines like these on every machine:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796096700.336056 13441 port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:1796096700.336428 13441 cudart_stub.cc:31] Could not find cuda drivers ...

and on a machine without a usable GPU, its first look at the devices logs at ERROR level:

    E0000 00:00:1796096705.996286 13441 cuda_platform.cc:52] failed call to cuInit: ...

TF_CPP_MIN_LOG_LEVEL cannot hide these notes. absl writes them before TensorFlow has set up its
logging. Measured with TF 2.21: the first three lines print at every level from 0 to 3, and the
cuInit line at every level but 3. (Setting the variable in __main__ is also too late whenever
the package's __init__ has imported TensorFlow already: see safeops/__init__.py.)

So the commands that run TensorFlow start it here, first, with file descriptor 2 sent to a
temporary file. Then they pass on every line that is not one of these notes. The cuInit line
is returned: `info` reports it as the reason no GPU is visible. An explicit TF_CPP_MIN_LOG_LEVEL
wins: with it set, nothing is held back.
"""

import os
import re
import sys
import tempfile

_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called"
# Log line prefixes: absl's (severity, date, time, thread, file:line]) and TensorFlow's own
# logger of 2.16 to 2.19 (date time: severity file:line]).
_LOG_LINES = (
    re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]]+\] ?(.*)$"),
    re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+: ([IWEF]) [^\]]+\] ?(.*)$"),
)
_NO_GPU = "failed call to cuInit"
# Start-up notes logged at ERROR level that are no error: TensorFlow 2.16 to 2.18 register
# their cuFFT, cuDNN and cuBLAS plugins twice on every start.
_NOT_ERRORS = ("Attempting to register factory for plugin",)
# The second line of a note, not a log line itself (cpu_feature_guard's list of instructions).
_CONTINUATIONS = ("To enable the following instructions:",)


def start_tensorflow():
    """Imports TensorFlow and lists its devices (which initializes CUDA). Returns the notes
    held back that say why no GPU is usable (the cuInit line's message), else []."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        _start()
        return []
    # Later C++ INFO and WARNING lines are notes too; errors still show.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    kept, notes = _filter(_with_stderr_captured(_start))
    sys.stderr.write(kept)
    sys.stderr.flush()
    return notes


def _start():
    import tensorflow as tf

    tf.config.list_physical_devices()


def _with_stderr_captured(fn):
    """Runs fn() with file descriptor 2 (C++ and Python stderr) sent to a temporary file and
    returns what was written there. If fn raises, what it wrote is passed on first."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            fn()
        except BaseException:
            _restore(saved)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        _restore(saved)
        captured.seek(0)
        return captured.read().decode(errors="replace")


def _restore(saved):
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def _filter(text):
    """(the lines to pass on, the cuInit messages): drops absl's banner, INFO and WARNING log
    lines (with their continuation lines), the cuInit error and the errors that are no error;
    keeps every other line, other errors included."""
    kept, notes = [], []
    for line in text.splitlines(keepends=True):
        log = next((m for m in (p.match(line) for p in _LOG_LINES) if m), None)
        if line.startswith(_ABSL_BANNER) or line.startswith(_CONTINUATIONS):
            continue
        if log and (log.group(1) in "IW" or any(n in line for n in _NOT_ERRORS)):
            continue
        if log and _NO_GPU in line:
            notes.append(log.group(2).strip())
            continue
        kept.append(line)
    return "".join(kept), notes
