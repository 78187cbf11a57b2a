"""The span names and attribute keys the viewer reads (DESIGN.md "Traces").

They mirror :mod:`tracing.names`, which the viewer does not import (it reads files, whoever wrote
them); a test keeps the two in step.
"""

from __future__ import annotations

from typing import Final

RUN_ID: Final = "graphtrace.run.id"
GRAPH: Final = "graphtrace.graph"
RUN_STATUS: Final = "graphtrace.run.status"
NODE_STEP: Final = "graphtrace.node.step"
DEP_CACHED: Final = "graphtrace.dep.cached"
GATE_ID: Final = "graphtrace.gate.id"
GATE_PROMPT: Final = "graphtrace.gate.prompt"
GATE_ANSWER: Final = "graphtrace.gate.answer"
GATE_WAIT_MS: Final = "graphtrace.gate.wait_ms"
GATE_ANSWERED_BY: Final = "graphtrace.gate.answered_by"
GATE_SCHEMA: Final = "graphtrace.gate.schema"
GATE_SOCKET: Final = "graphtrace.gate.socket"
LM_PURPOSE: Final = "graphtrace.lm.purpose"
LM_ATTEMPT: Final = "graphtrace.lm.attempt"

GEN_AI_OPERATION: Final = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"

STALL_SPAN_NAME: Final = "stall"
STALL_ELAPSED_S: Final = "graphtrace.stall.elapsed_s"
STALL_CALL_GRAPH: Final = "graphtrace.stall.call_graph"
STALLED_SPAN: Final = "graphtrace.stall.span"
STALL_THRESHOLD_S: Final = "graphtrace.stall.threshold_s"
STALL_SNAPSHOT: Final = "graphtrace.stall.snapshot"
STALL_TASK: Final = "graphtrace.stall.task"
LOOP_BLOCKED_SPAN_NAME: Final = "loop.blocked"
LOOP_BLOCKED_S: Final = "graphtrace.loop.blocked_s"
LOOP_STACK: Final = "graphtrace.loop.stack"
LOOP_TASK: Final = "graphtrace.loop.task"
LOOP_HELD_BY: Final = "graphtrace.loop.span"

EXCEPTION_EVENT: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
