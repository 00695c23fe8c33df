"""Failure cause chains in requests are cut to a depth the server can store and read back."""

from __future__ import annotations

from temporalio.api.command.v1 import Command
from temporalio.api.enums.v1 import CommandType
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflowservice.v1 import (
    RespondActivityTaskFailedRequest,
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)

from tempyral.frontend.deep_failures import CUT_MESSAGE, MAX_FAILURE_DEPTH, cut_deep_failures


def _chain(length: int) -> Failure:
    failure = Failure(message=f"level {length}")
    for level in range(length - 1, 0, -1):
        failure = Failure(message=f"level {level}", cause=failure)
    return failure


def _messages(failure: Failure) -> list[str]:
    messages = [failure.message]
    while failure.HasField("cause"):
        failure = failure.cause
        messages.append(failure.message)
    return messages


def test_a_long_chain_keeps_its_first_failures_and_says_it_was_cut() -> None:
    request = RespondActivityTaskFailedRequest(failure=_chain(90))
    cut_deep_failures(request)
    messages = _messages(request.failure)
    assert messages == [f"level {n}" for n in range(1, MAX_FAILURE_DEPTH + 1)] + [CUT_MESSAGE]
    assert request.failure.cause.cause.HasField("cause")


def test_chains_within_the_limit_are_left_alone() -> None:
    for length in (1, MAX_FAILURE_DEPTH):
        request = RespondActivityTaskFailedRequest(failure=_chain(length))
        cut_deep_failures(request)
        assert _messages(request.failure) == [f"level {n}" for n in range(1, length + 1)]
    request = RespondActivityTaskFailedRequest()
    cut_deep_failures(request)
    assert not request.HasField("failure")


def test_failures_inside_commands_are_cut_too() -> None:
    command = Command(command_type=CommandType.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION)
    command.fail_workflow_execution_command_attributes.failure.CopyFrom(_chain(90))
    request = RespondWorkflowTaskCompletedRequest(commands=[Command(), command])
    cut_deep_failures(request)
    assert len(_messages(request.commands[1].fail_workflow_execution_command_attributes.failure)) == 65
    start = StartWorkflowExecutionRequest(continued_failure=_chain(90))
    cut_deep_failures(start)
    assert len(_messages(start.continued_failure)) == 65
