"""The functions' Lambda entry point (`lambda_handler` in zappa_settings.json):
Zappa's own handler, with Python's cyclic garbage collector paused during the
cold start.

A cold start imports some 1,500 modules; the collector runs hundreds of times
meanwhile and finds next to nothing (module-level objects live for good), which
costs about a fifth of the cold start (bench/coldstart.py). After the first
event everything loaded so far is frozen (moved out of the collector's view for
good, as it will never be freed) and collection resumes as normal.

Only meaningful inside a package built by `make lambda`: `handler` is the copy
of zappa/handler.py that Zappa puts at the package root.
"""

from __future__ import annotations

import gc

gc.disable()

from handler import lambda_handler as zappa_lambda_handler  # noqa: E402


def lambda_handler(event, context):
    try:
        return zappa_lambda_handler(event, context)
    finally:
        if not gc.isenabled():
            gc.freeze()
            gc.enable()
