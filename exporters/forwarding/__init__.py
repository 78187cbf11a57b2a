"""OTLP forwarding: spans to a collector or backend, besides the local file, and back again.

``processor`` holds the span processor that forwards live (its own queue and thread, so the
endpoint never slows the runs or the file), ``loss`` the ``forward.lost`` records that say in
the trace what could not be forwarded, ``ledger`` what each endpoint was sent, ``readable`` the
records of a file turned back into SDK spans for ``graphtrace push`` (:mod:`exporters.push`).
Import the submodules directly; this package imports nothing itself.
"""
