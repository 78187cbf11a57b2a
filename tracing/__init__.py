"""Instrumentation: provider setup, span names and attributes, the live (pending-span) processor."""

from tracing.setup import Tracing, configure, current, default_trace_dir

__all__ = ["Tracing", "configure", "current", "default_trace_dir"]
