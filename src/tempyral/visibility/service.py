"""ListWorkflowExecutions / CountWorkflowExecutions over the visibility table."""

from __future__ import annotations

from temporalio.api.workflow.v1 import message_pb2 as workflow_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import InvalidArgument
from tempyral.namespace.registry import Namespace
from tempyral.persistence.store import Store
from tempyral.visibility.query import compile_query
from tempyral.visibility.records import execution_info

DEFAULT_PAGE_SIZE = 1000


class Visibility:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _custom(self, ns: Namespace) -> dict[str, int]:
        return dict(ns.record.search_attributes)

    async def list(
        self, ns: Namespace, query: str, page_size: int, token: bytes
    ) -> tuple[list[workflow_pb.WorkflowExecutionInfo], bytes]:
        compiled = compile_query(query, self._custom(ns))
        compiled.page_size = page_size if page_size > 0 else DEFAULT_PAGE_SIZE
        if token:
            try:
                compiled.offset = int(token.decode())
            except ValueError as err:
                raise InvalidArgument("Invalid NextPageToken.") from err
        rows = await self.store.list_visibility(ns.id, compiled)
        next_token = b""
        if len(rows) == compiled.page_size:
            next_token = str(compiled.offset + len(rows)).encode()
        return [execution_info(r) for r in rows], next_token

    async def count(self, ns: Namespace, query: str) -> ws.CountWorkflowExecutionsResponse:
        compiled = compile_query(query, self._custom(ns))
        count = await self.store.count_visibility(ns.id, compiled, None)
        return ws.CountWorkflowExecutionsResponse(count=count)
