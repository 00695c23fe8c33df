"""Links between executions, in the two forms they travel in: `temporal.api.common.v1.Link`
(history events, StartWorkflowExecution) and Nexus links (`temporal:///namespaces/...` URLs with
a type, in Nexus requests and responses). The URL shape is the one the SDKs and the reference use.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import EventType
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb

WORKFLOW_EVENT_TYPE = common.Link.WorkflowEvent.DESCRIPTOR.full_name
_HISTORY_PATH = re.compile(r"^/namespaces/([^/]+)/workflows/([^/]+)/([^/]+)/history$")
_EVENT_REFERENCE = "EventReference"
_REQUEST_ID_REFERENCE = "RequestIdReference"


def _event_type_name(event_type: int) -> str:
    # EVENT_TYPE_NEXUS_OPERATION_SCHEDULED -> NexusOperationScheduled
    name = EventType.Name(event_type).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]
    return "".join(word.capitalize() for word in name.split("_"))


def _event_type_value(text: str) -> int:
    if text.startswith("EVENT_TYPE_"):
        return EventType.Value(text)
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", text).upper()
    try:
        return EventType.Value(f"EVENT_TYPE_{snake}")
    except ValueError:
        return 0


def workflow_event_to_nexus(link: common.Link.WorkflowEvent) -> nexus_pb.Link:
    path = "/namespaces/{}/workflows/{}/{}/history".format(
        quote(link.namespace, safe=""), quote(link.workflow_id, safe=""), quote(link.run_id, safe="")
    )
    if link.HasField("request_id_ref"):
        query = {
            "referenceType": _REQUEST_ID_REFERENCE,
            "requestID": link.request_id_ref.request_id,
            "eventType": _event_type_name(link.request_id_ref.event_type),
        }
    else:
        query = {
            "referenceType": _EVENT_REFERENCE,
            "eventID": str(link.event_ref.event_id),
            "eventType": _event_type_name(link.event_ref.event_type),
        }
    return nexus_pb.Link(url=f"temporal://{path}?{urlencode(query)}", type=WORKFLOW_EVENT_TYPE)


def nexus_to_temporal(link: nexus_pb.Link) -> common.Link | None:
    """A Nexus link as a Temporal link; None for links of other kinds or malformed ones."""
    if link.type != WORKFLOW_EVENT_TYPE:
        return None
    parts = urlsplit(link.url)
    match = _HISTORY_PATH.match(parts.path) if parts.scheme == "temporal" else None
    if match is None:
        return None
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    event = common.Link.WorkflowEvent(
        namespace=unquote(match.group(1)), workflow_id=unquote(match.group(2)), run_id=unquote(match.group(3))
    )
    event_type = _event_type_value(query.get("eventType", ""))
    if query.get("referenceType") == _REQUEST_ID_REFERENCE:
        event.request_id_ref.request_id = query.get("requestID", "")
        event.request_id_ref.event_type = event_type  # type: ignore[assignment]
    else:
        try:
            event.event_ref.event_id = int(query.get("eventID", "0"))
        except ValueError:
            return None
        event.event_ref.event_type = event_type  # type: ignore[assignment]
    return common.Link(workflow_event=event)


def to_temporal_links(links: list[nexus_pb.Link]) -> list[common.Link]:
    return [t for t in (nexus_to_temporal(link) for link in links) if t is not None]


def scheduled_event_link(namespace: str, workflow_id: str, run_id: str, event_id: int) -> nexus_pb.Link:
    """The link a caller sends with its start request: its NexusOperationScheduled event."""
    return workflow_event_to_nexus(
        common.Link.WorkflowEvent(
            namespace=namespace,
            workflow_id=workflow_id,
            run_id=run_id,
            event_ref=common.Link.WorkflowEvent.EventReference(
                event_id=event_id, event_type=EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED
            ),
        )
    )
