"""Reading trace files back: tolerant OTLP JSON decoding, the sidecar index, run assembly.

The viewer goes through :class:`exporters.reading.source.TraceSource`; the submodules are
importable on their own (``from exporters.reading.lines import iter_chunks``). Nothing here
imports the OpenTelemetry SDK, so ``graphtrace ls`` starts quickly.
"""
