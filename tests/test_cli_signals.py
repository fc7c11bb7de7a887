"""Long-running commands stop on SIGTERM whenever it arrives (gateway.cli_support.stop_on_signals).

Issue 11 newcomer: a ``gateway worker`` hung for good on a stop, ignoring every further SIGTERM.
Its handler called ``Event.set()``, which takes the lock ``Event.wait()`` holds for a moment; a
signal arriving in that moment runs the handler in the very thread that holds it.  (With the old
``signal.signal(SIGTERM, lambda *_: stop.set())`` the script below never prints "handler returned".)
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

HOLDS_THE_EVENTS_LOCK_WHEN_THE_SIGNAL_ARRIVES = textwrap.dedent(
    """
    import os, signal
    from gateway.cli_support import stop_on_signals

    stop = stop_on_signals()
    with stop._cond:  # what Event.wait() holds between checking the flag and sleeping
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10_000):  # the handler runs at one of these bytecodes, in this thread
            pass
        print("handler returned", flush=True)
    print("stopped" if stop.wait(10) else "not stopped", flush=True)
    """
)


def test_a_signal_arriving_while_the_stop_events_lock_is_held_still_stops_the_command():
    done = subprocess.run(
        [sys.executable, "-c", HOLDS_THE_EVENTS_LOCK_WHEN_THE_SIGNAL_ARRIVES],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout.split() == ["handler", "returned", "stopped"], done.stderr
