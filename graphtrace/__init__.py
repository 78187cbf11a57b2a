"""graphtrace: agent graphs of typed Pydantic nodes, every step an OpenTelemetry span.

Example::

    from graphtrace import Node, Graph, FakeLM, configure

    class Done(Node):
        answer: str
        async def __call__(self) -> None: ...

    class Ask(Node):
        question: str
        async def __call__(self) -> Done: ...

    configure(trace_dir=".graphtrace")
    last = Graph(start=Ask).run(lm=FakeLM(), question="why?")
"""

from graphtrace.errors import (
    DepError,
    FillError,
    GateError,
    GateRefused,
    GraphDefinitionError,
    GraphtraceError,
    InputError,
    LMError,
    MaxStepsExceeded,
    RecallError,
    RunCancelled,
    RunError,
    RunTimedOut,
)
from graphtrace.fields import Dep, Gate, Recall
from graphtrace.gates import PendingGate
from graphtrace.graph import Graph
from graphtrace.lm import LM, Completion, FakeLM, Message, Usage
from graphtrace.node import Node
from graphtrace.pool import RunHandle, RunPool
from graphtrace.run import Run, RunState
from tracing.setup import Tracing, configure

__all__ = [
    "LM",
    "Completion",
    "Dep",
    "DepError",
    "FakeLM",
    "FillError",
    "Gate",
    "GateError",
    "GateRefused",
    "Graph",
    "GraphDefinitionError",
    "GraphtraceError",
    "InputError",
    "LMError",
    "MaxStepsExceeded",
    "Message",
    "Node",
    "PendingGate",
    "Recall",
    "RecallError",
    "Run",
    "RunCancelled",
    "RunError",
    "RunHandle",
    "RunPool",
    "RunState",
    "RunTimedOut",
    "Tracing",
    "Usage",
    "configure",
]
