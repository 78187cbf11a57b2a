"""Gates across processes: the control socket a runtime listens on while gates wait, the client
that answers through it, and finding both from the trace files.

- :mod:`~graphtrace.control.protocol`: the request and reply on the wire, the size limit.
- :mod:`~graphtrace.control.sockets`: ``TRACE_DIR/control/`` sockets, modes, peer uid, staleness.
- :mod:`~graphtrace.control.server`: the server inside the runtime (owned by the ``RunPool``).
- :mod:`~graphtrace.control.discovery`: waiting gates and live sockets, read from the traces.
- :mod:`~graphtrace.control.client`: sending an answer; what ``graphtrace answer`` does.
"""
