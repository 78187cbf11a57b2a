"""Language models: the protocol, the offline ``FakeLM``, and the traced call."""

from graphtrace.lm.fake import FakeLM
from graphtrace.lm.protocol import LM, Completion, Message, Usage

__all__ = ["LM", "Completion", "FakeLM", "Message", "Usage"]
