"""What one DAG task hands the next: small typed objects with one documented JSON form.

Airflow 3 keeps a task's return value (its XCom) as JSON, so a dict of strings used to travel
between tasks and each step picked keys out of it. Each object a step returns to a DAG is a
pydantic model built on ``XComValue``: the task that produces it returns ``to_xcom()``, a JSON
object of the model's fields (dates and instants as ISO 8601 strings, nothing but JSON types),
and the task that consumes it reads ``from_xcom(value)``, which validates it back to typed
values, or fails at the boundary naming the field. Unknown keys are ignored, so a run started
before an upgrade is still read after it.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict


class XComValue(BaseModel):
    """A typed value that crosses a task boundary; see the module docstring for its form."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_xcom(self) -> dict:
        """The JSON object a task returns (Airflow stores it as the task's XCom)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_xcom(cls, value: dict) -> Self:
        """The typed value of an XCom (or any JSON object of the same form)."""
        return cls.model_validate(value)
