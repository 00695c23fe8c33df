"""The test servers' start-up: a reference server is started only once its frontend serves, not when
its port opens (it refuses calls for a moment after that, which failed whichever test came first); the
ports given to servers are never ones an outgoing connection could take meanwhile."""

from __future__ import annotations

import sys

import grpc
import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest, GetSystemInfoResponse

from tests.support.servers import ServerProcess, ephemeral_ports, free_port

# A frontend that listens at once but answers its first calls as the reference's does before it is
# healthy: counted in calls, not time, so the test does not depend on speed.
UNHEALTHY_FRONTEND = """
import sys
from concurrent import futures
import grpc
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest, GetSystemInfoResponse

calls = 0

def get_system_info(request, context):
    global calls
    calls += 1
    if calls <= 3:
        context.abort(grpc.StatusCode.UNAVAILABLE, "Frontend is not healthy yet")
    return GetSystemInfoResponse(server_version="fake")

server = grpc.server(futures.ThreadPoolExecutor(2))
server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
    "temporal.api.workflowservice.v1.WorkflowService",
    {"GetSystemInfo": grpc.unary_unary_rpc_method_handler(
        get_system_info,
        request_deserializer=GetSystemInfoRequest.FromString,
        response_serializer=GetSystemInfoResponse.SerializeToString,
    )},
)])
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
server.wait_for_termination()
"""


@pytest.fixture
def unhealthy_frontend() -> ServerProcess:
    port = free_port()
    return ServerProcess([sys.executable, "-c", UNHEALTHY_FRONTEND, str(port)], port, "unhealthy-frontend")


def test_a_started_reference_answers_its_first_call(unhealthy_frontend: ServerProcess) -> None:
    unhealthy_frontend.wait_until_serving = True  # as reference() sets it
    unhealthy_frontend.start()
    try:
        with grpc.insecure_channel(unhealthy_frontend.address) as channel:
            get_system_info = channel.unary_unary(
                "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo",
                request_serializer=GetSystemInfoRequest.SerializeToString,
                response_deserializer=GetSystemInfoResponse.FromString,
            )
            assert get_system_info(GetSystemInfoRequest(), timeout=10).server_version == "fake"
    finally:
        unhealthy_frontend.stop()


def test_free_ports_are_outside_the_ephemeral_range() -> None:
    ephemeral = ephemeral_ports()
    ports = {free_port() for _ in range(20)}
    assert not any(port in ephemeral for port in ports)
    assert len(ports) > 1  # chosen at random, not one after the other from a fixed start
