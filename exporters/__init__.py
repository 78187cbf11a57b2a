"""Trace output: the OTLP JSON encoder, the JSON-lines file writer, and (later) the reader.

Import the submodules directly (``from exporters.otlp_json import encode_batch``,
``from exporters.file import JsonlFileWriter``); this package imports nothing itself, so the
viewer can load the reader without paying for the OpenTelemetry SDK.
"""
