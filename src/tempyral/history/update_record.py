"""An update the server holds in memory while it is admitted, sent to a worker, or accepted: what its
callers wait on. It lives in the run's cache entry (shard.ExecutionEntry.updates)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio.api.update.v1 import message_pb2 as update_pb

from tempyral.common.errors import ServiceError


@dataclass(eq=False)
class UpdateRecord:
    update_id: str
    request: update_pb.Request
    state: str = "admitted"  # admitted -> sent -> accepted
    accepted_event_id: int = 0
    sent_with_stamp: int = 0
    accepted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    outcome: asyncio.Future[update_pb.Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def resolve(self, outcome: update_pb.Outcome) -> None:
        if not self.accepted.done():
            self.accepted.set_result(None)
        if not self.outcome.done():
            self.outcome.set_result(outcome)

    def fail(self, error: ServiceError) -> None:
        for fut in (self.accepted, self.outcome):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # mark retrieved: nobody may be waiting any more
