"""Three workflows of Vellum's own SDK (`vellum.workflows`) for the VellumEmitter tests: sequential
nodes, parallel branches that merge, and a node that fails. Every workflow has node and input classes
of its own (the SDK attaches edges to the node classes)."""

from __future__ import annotations

from vellum.workflows import BaseWorkflow
from vellum.workflows.errors.types import WorkflowErrorCode
from vellum.workflows.exceptions import NodeException
from vellum.workflows.inputs import BaseInputs
from vellum.workflows.nodes import BaseNode
from vellum.workflows.state import BaseState
from vellum.workflows.types.core import MergeBehavior


class SequentialInputs(BaseInputs):
    topic: str


class Draft(BaseNode):
    topic = SequentialInputs.topic

    class Outputs(BaseNode.Outputs):
        text: str

    def run(self) -> BaseNode.Outputs:
        return self.Outputs(text=f"a draft about {self.topic}")


class Polish(BaseNode):
    draft = Draft.Outputs.text

    class Outputs(BaseNode.Outputs):
        text: str

    def run(self) -> BaseNode.Outputs:
        return self.Outputs(text=self.draft.upper())


class SequentialWorkflow(BaseWorkflow[SequentialInputs, BaseState]):
    graph = Draft >> Polish

    class Outputs(BaseWorkflow.Outputs):
        result = Polish.Outputs.text


class ParallelInputs(BaseInputs):
    topic: str


class Left(BaseNode):
    topic = ParallelInputs.topic

    class Outputs(BaseNode.Outputs):
        side: str

    def run(self) -> BaseNode.Outputs:
        return self.Outputs(side=f"left {self.topic}")


class Right(BaseNode):
    topic = ParallelInputs.topic

    class Outputs(BaseNode.Outputs):
        side: str

    def run(self) -> BaseNode.Outputs:
        return self.Outputs(side=f"right {self.topic}")


class Join(BaseNode):
    left = Left.Outputs.side
    right = Right.Outputs.side

    class Trigger(BaseNode.Trigger):
        merge_behavior = MergeBehavior.AWAIT_ALL

    class Outputs(BaseNode.Outputs):
        both: str

    def run(self) -> BaseNode.Outputs:
        return self.Outputs(both=f"{self.left} + {self.right}")


class ParallelWorkflow(BaseWorkflow[ParallelInputs, BaseState]):
    graph = {Left, Right} >> Join

    class Outputs(BaseWorkflow.Outputs):
        both = Join.Outputs.both


class FailingInputs(BaseInputs):
    topic: str


class Outline(BaseNode):
    topic = FailingInputs.topic

    class Outputs(BaseNode.Outputs):
        text: str

    def run(self) -> BaseNode.Outputs:
        return self.Outputs(text=self.topic)


class Validate(BaseNode):
    outline = Outline.Outputs.text

    class Outputs(BaseNode.Outputs):
        text: str

    def run(self) -> BaseNode.Outputs:
        raise NodeException(f"outline too short: {self.outline!r}", code=WorkflowErrorCode.INVALID_INPUTS)


class FailingWorkflow(BaseWorkflow[FailingInputs, BaseState]):
    graph = Outline >> Validate

    class Outputs(BaseWorkflow.Outputs):
        result = Validate.Outputs.text
