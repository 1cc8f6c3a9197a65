"""The project's error base: what a user can fix, as opposed to a bug.

Every error a user can fix (a params key, a data file, an endpoint, an output path) derives from
:class:`ElicitError`; the stage CLIs print it as one line, ``error: ...``, naming the problem and the fix. Anything
else — a plain ``ValueError``, ``RuntimeError``, ``KeyError`` — is a bug and keeps its traceback.
"""

from __future__ import annotations


class ElicitError(Exception):
    """A problem in the user's input, stated in one line with the key or file and the fix."""
