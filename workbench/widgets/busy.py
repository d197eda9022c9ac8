"""A busy indicator for widgets that recompute: while the work runs, a status line says so and
the controls are disabled, so a click made meanwhile is not queued silently behind it.

>>> import ipywidgets as W
>>> status, button = W.HTML(), W.Button()
>>> with busy(status, [button], "computing the lens"):
...     print(button.disabled, "computing" in status.value)
True True
>>> button.disabled, status.value
(False, '')
"""
from __future__ import annotations

import html
from contextlib import contextmanager

SPINNER = ('<span style="font:12px sans-serif; color:#8a6d00">&#8987; {what}&hellip; '
           '(the controls are disabled until it is done)</span>')


def status_line():
    """The (empty) status widget that :func:`busy` writes to."""
    import ipywidgets as W
    return W.HTML("", layout=W.Layout(min_height="20px"))


@contextmanager
def busy(status, controls, what: str = "computing"):
    """Show ``what`` in ``status`` and disable ``controls`` for the duration of the block.

    Widget values sync to the browser as soon as they are set, so the message shows while the
    kernel is still working. An error still re-enables the controls, and the message says it
    failed."""
    before = [c.disabled for c in controls]
    for c in controls:
        c.disabled = True
    status.value = SPINNER.format(what=what)
    done = ""
    try:
        yield
    except Exception as e:
        done = (f'<span style="font:12px sans-serif; color:#a00">failed: '
                f'{html.escape(type(e).__name__ + ": " + str(e))}</span>')
        raise
    finally:  # controls first, then the line: whoever sees the line cleared finds them usable
        for c, was in zip(controls, before):
            c.disabled = was
        status.value = done
