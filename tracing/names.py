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
# the control socket that takes answers for a waiting gate (on its pending record)
GATE_SOCKET = "graphtrace.gate.socket"
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
GEN_AI_OUTPUT_TYPE = "gen_ai.output.type"
# opt-in content capture (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_CONTENT_EVENT = "gen_ai.client.inference.operation.details"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_STATUS_CODE = "http.response.status_code"
# an HTTP LM backend: requests sent for one call (retries included), the structured-output mode
# the server accepted, and one event per failed request
LM_HTTP_ATTEMPTS = "graphtrace.lm.http_attempts"
LM_HTTP_ATTEMPT = "graphtrace.lm.http_attempt"
LM_RETRY_IN_S = "graphtrace.lm.retry_in_s"
LM_RESPONSE_FORMAT = "graphtrace.lm.response_format"
LM_ATTEMPT_FAILED_EVENT = "graphtrace.lm.http_attempt_failed"

# stall watchdog (tracing/watchdog.py): a `stall` record under a span open past its threshold
STALL_SPAN_NAME = "stall"
STALL_KIND = "graphtrace.stall.kind"  # node | dep | chat
STALLED_SPAN = "graphtrace.stall.span"  # the stalled span's name
STALL_ELAPSED_S = "graphtrace.stall.elapsed_s"
STALL_THRESHOLD_S = "graphtrace.stall.threshold_s"
STALL_SNAPSHOT = "graphtrace.stall.snapshot"  # 1, 2, 3… (taken at 1×, 2×, 4×… the threshold)
STALL_TASK = "graphtrace.stall.task"
STALL_CALL_GRAPH = "graphtrace.stall.call_graph"  # text, as asyncio.format_call_graph
STALL_FRAMES = "graphtrace.stall.frames"  # the same graph as JSON
# a `loop.blocked` span: the event loop did not answer its heartbeat
LOOP_BLOCKED_SPAN_NAME = "loop.blocked"
LOOP_BLOCKED_S = "graphtrace.loop.blocked_s"
LOOP_THRESHOLD_S = "graphtrace.loop.threshold_s"
LOOP_STACK = "graphtrace.loop.stack"  # the loop thread's Python stack, innermost last
LOOP_FRAMES = "graphtrace.loop.frames"  # the same as JSON
LOOP_THREAD = "graphtrace.loop.thread"
LOOP_TASK = "graphtrace.loop.task"  # the task that held the loop
LOOP_HELD_BY = "graphtrace.loop.span"  # that task's innermost open span (the record's parent)
LOOP_OPEN_RUNS = "graphtrace.loop.open_runs"  # runs open on the loop (linked, up to 64)

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
