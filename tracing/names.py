"""Span names and attribute keys: the trace contract of DESIGN.md in one module."""

from __future__ import annotations

TRACER_NAME = "graphtrace"

# attribute keys
RUN_ID = "graphtrace.run.id"
GRAPH = "graphtrace.graph"
RUN_STATUS = "graphtrace.run.status"
NODE_STEP = "graphtrace.node.step"
NODE_STATE = "graphtrace.node.state"
DEP_CACHED = "graphtrace.dep.cached"
GATE_ID = "graphtrace.gate.id"
GATE_PROMPT = "graphtrace.gate.prompt"
GATE_SCHEMA = "graphtrace.gate.schema"
GATE_ANSWER = "graphtrace.gate.answer"
GATE_WAIT_MS = "graphtrace.gate.wait_ms"
GATE_ANSWERED_BY = "graphtrace.gate.answered_by"
PENDING = "graphtrace.pending"
LM_ATTEMPT = "graphtrace.lm.attempt"
LM_PURPOSE = "graphtrace.lm.purpose"

GEN_AI_OPERATION = "gen_ai.operation.name"
GEN_AI_PROVIDER = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons"

# run statuses
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"


def run_span(graph: str) -> str:
    return f"run {graph}"


def node_span(node: str) -> str:
    return f"node {node}"


def dep_span(function: str) -> str:
    return f"dep {function}"


def chat_span(model: str) -> str:
    return f"chat {model}"


def gate_span(node: str, field: str) -> str:
    return f"gate {node}.{field}"
