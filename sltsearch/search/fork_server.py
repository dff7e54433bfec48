"""What the workers' fork server imports once, first thing (`sltsearch.search.workers.PRELOAD`).

The server ignores Ctrl-C only after its imports: a Ctrl-C in the terminal while it still imports (during
the caller's pre-run checks) would print its traceback. So Ctrl-C is ignored before the imports; the workers
forked from the server keep that (the caller stops them with SIGTERM). Nothing else imports this module.
"""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)

import sltsearch.search.worker_loop  # noqa: E402, F401 - the trial code, imported once for every worker
