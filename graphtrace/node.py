"""``Node``: a step of a graph, written as a plain typed Pydantic model.

A node's fields are its state; its ``__call__`` return type hint names the nodes that may follow
(``None`` in the hint means the run may end there). A body of ``...`` lets the LM decide and fill
the next node; any other body is plain Python returning the next node.

Example::

    class Escalate(Node):
        \"\"\"Hand the ticket to a person.\"\"\"
        reason: str
        async def __call__(self) -> Done | None:
            return Done(summary=self.reason)   # Done's other fields are filled by the runtime
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict


class Node(BaseModel):
    """Base class of graph nodes.

    Constructing a node with some required fields left out is allowed: the result is a *partial*
    node, which the runtime completes (deps, recall, gates, LM) when it becomes the next step.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, /, **data: Any) -> None:
        fields = type(self).model_fields
        unknown = [name for name in data if name not in fields]
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no field {', '.join(map(repr, unknown))}; "
                f"its fields are {', '.join(fields) or 'none'}"
            )
        if all(name in data for name, info in fields.items() if info.is_required()):
            super().__init__(**data)
            return
        # A partial node: kept unvalidated until the runtime completes and validates it.
        object.__setattr__(self, "__dict__", dict(data))
        object.__setattr__(self, "__pydantic_fields_set__", set(data))
        object.__setattr__(self, "__pydantic_extra__", None)
        object.__setattr__(self, "__pydantic_private__", None)

    # Tell pydantic this __init__ is a base one: validation (model_validate, which the runtime
    # uses) then never calls it, so a node is validated once, not twice.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    if TYPE_CHECKING:  # each subclass declares its own; the runtime reads the return hint

        async def __call__(self) -> Node | None: ...

    def provided_values(self) -> dict[str, Any]:
        """The field values that were given explicitly when this node was constructed."""
        return {
            name: self.__dict__[name] for name in self.model_fields_set if name in self.__dict__
        }
