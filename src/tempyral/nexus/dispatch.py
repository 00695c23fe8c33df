"""Nexus tasks: a start or cancel request handed to a handler worker, and the worker's reply.

Unlike workflow and activity tasks, a Nexus task is not durable: someone is waiting for its
answer (an operation's start task, or an HTTP caller) and gives up after a request timeout.
What makes delivery reliable is the caller's side: an operation stays scheduled in its
workflow's state, and its start task is retried until a worker answers or the operation times
out. So a task lives in matching's queue in memory; a task whose caller gave up is skipped.
Several workers polling one queue take tasks in turn (matching hands each task to the longest
waiting poller).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import InvalidArgument, NotFound
from tempyral.matching.service import NEXUS, Matching, QueueKey
from tempyral.proto.internal_pb2 import NexusTaskToken

_TOKEN_PREFIX = b"nt1"
Reply = ws.RespondNexusTaskCompletedRequest | ws.RespondNexusTaskFailedRequest


@dataclass(eq=False)
class NexusTask:
    task_id: str
    namespace_id: str
    task_queue: str
    request: nexus_pb.Request
    reply: asyncio.Future[Reply]
    abandoned: bool = False
    taken_at: float = 0.0
    identity: str = field(default="")


class NexusDispatcher:
    def __init__(self, matching: Matching) -> None:
        self.matching = matching
        self._waiting: dict[str, NexusTask] = {}
        self._ids = itertools.count(1)
        self._prefix = base64.urlsafe_b64encode(os.urandom(6)).decode()
        # With several nodes: dispatch on the node that serves the queue (nodes/matching.py).
        self.route: Callable[[NexusDispatcher, str, str, nexus_pb.Request, float], Awaitable[Reply | None]] | None = (
            None
        )

    async def dispatch(
        self, namespace_id: str, task_queue: str, request: nexus_pb.Request, timeout: float
    ) -> Reply | None:
        """Hand `request` to a worker polling the queue and wait for its reply; None if no worker
        answered within `timeout` seconds. With several nodes, the node serving the queue does it."""
        if self.route is not None:
            return await self.route(self, namespace_id, task_queue, request, timeout)
        return await self.dispatch_here(namespace_id, task_queue, request, timeout)

    async def dispatch_here(
        self, namespace_id: str, task_queue: str, request: nexus_pb.Request, timeout: float
    ) -> Reply | None:
        loop = asyncio.get_running_loop()
        task = NexusTask(
            task_id=f"{self._prefix}-{next(self._ids)}",
            namespace_id=namespace_id,
            task_queue=task_queue,
            request=request,
            reply=loop.create_future(),
        )
        self._waiting[task.task_id] = task
        self.matching.add(QueueKey(namespace_id, task_queue, NEXUS), task)
        try:
            return await asyncio.wait_for(asyncio.shield(task.reply), timeout=max(timeout, 0.0))
        except TimeoutError:
            return None
        finally:
            task.abandoned = True
            self._waiting.pop(task.task_id, None)

    @staticmethod
    def claim(task: NexusTask, identity: str) -> bool:
        """A poller got `task` from the queue: False if its caller gave up meanwhile."""
        if task.abandoned or task.reply.done() or task.taken_at:
            return False
        task.taken_at = time.monotonic()
        task.identity = identity
        return True

    @staticmethod
    def token_for(task: NexusTask) -> bytes:
        token = NexusTaskToken(namespace_id=task.namespace_id, task_queue=task.task_queue, task_id=task.task_id)
        return _TOKEN_PREFIX + token.SerializeToString()

    def respond(self, namespace_id: str, task_token: bytes, reply: Reply) -> None:
        token = decode_task_token(task_token)
        if token.namespace_id != namespace_id:
            raise InvalidArgument("Operation requested with a token from a different namespace.")
        task = self._waiting.get(token.task_id)
        if task is None or task.reply.done():
            # the caller gave up (request timeout) or another reply came first
            raise NotFound("Nexus task not found or already expired")
        task.reply.set_result(reply)


def decode_task_token(data: bytes) -> NexusTaskToken:
    if not data:
        raise InvalidArgument("Task token not set on request.")
    if not data.startswith(_TOKEN_PREFIX):
        raise InvalidArgument("Error deserializing task token.")
    try:
        token = NexusTaskToken.FromString(data[len(_TOKEN_PREFIX) :])
    except DecodeError as err:
        raise InvalidArgument("Error deserializing task token.") from err
    if not token.task_id:
        raise InvalidArgument("Error deserializing task token.")
    return token
