"""Search attributes coming in from clients and workflows: checked and typed like the reference."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import IndexedValueType as T

from tempyral.common.errors import InvalidArgument
from tempyral.visibility.values import MAX_KEYS, prepare_search_attributes

CUSTOM: dict[str, int] = {
    "CustomerId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "Priority": T.INDEXED_VALUE_TYPE_INT,
    "Score": T.INDEXED_VALUE_TYPE_DOUBLE,
    "Vip": T.INDEXED_VALUE_TYPE_BOOL,
    "Due": T.INDEXED_VALUE_TYPE_DATETIME,
    "Tags": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "Notes": T.INDEXED_VALUE_TYPE_TEXT,
}


def _attrs(**values: Any) -> common.SearchAttributes:
    sa = common.SearchAttributes()
    for name, value in values.items():
        payload = sa.indexed_fields[name]
        payload.metadata["encoding"] = b"json/plain"
        payload.data = json.dumps(value).encode()
    return sa


def _prepare(**values: Any) -> common.SearchAttributes:
    sa = _attrs(**values)
    prepare_search_attributes("default", CUSTOM, sa)
    return sa


def test_every_value_gets_its_type_metadata() -> None:
    sa = _prepare(
        CustomerId="c1", Priority=3, Score=1.5, Vip=True, Due="2026-01-02T03:04:05Z", Tags=["a", "b"], Notes="x y"
    )
    types = {name: p.metadata["type"].decode() for name, p in sa.indexed_fields.items()}
    assert types == {
        "CustomerId": "Keyword",
        "Priority": "Int",
        "Score": "Double",
        "Vip": "Bool",
        "Due": "Datetime",
        "Tags": "KeywordList",
        "Notes": "Text",
    }


def test_type_metadata_the_client_sent_is_kept() -> None:
    sa = _attrs(Priority=1)
    sa.indexed_fields["Priority"].metadata["type"] = b"Int"
    prepare_search_attributes("default", CUSTOM, sa)
    assert sa.indexed_fields["Priority"].metadata["type"] == b"Int"


def test_predefined_settable_attributes_are_accepted() -> None:
    sa = _prepare(TemporalChangeVersion=["patch-1"], BuildIds=["unversioned"])
    assert sa.indexed_fields["TemporalChangeVersion"].metadata["type"] == b"KeywordList"


@pytest.mark.parametrize("name", ["WorkflowId", "ExecutionStatus", "StartTime", "TaskQueue"])
def test_server_owned_attributes_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{name} attribute can't be set in SearchAttributes$"):
        _prepare(**{name: "x"})


def test_unknown_attribute_names_the_namespace() -> None:
    with pytest.raises(InvalidArgument, match=r"^Namespace default has no mapping defined for search attribute Nope$"):
        _prepare(Nope="x")


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("Priority", "abc", "abc"),
        ("Priority", 1.5, "1.5"),
        ("Priority", True, "true"),
        ("Vip", "yes", "yes"),
        ("Score", "1.5", "1.5"),
        ("Due", "tomorrow", "tomorrow"),
        ("Tags", "single", "single"),
        ("CustomerId", 12, "12"),
        ("Priority", [1, 2], "[1 2]"),
    ],
)
def test_values_of_the_wrong_type_are_refused(name: str, value: Any, shown: str) -> None:
    type_name = {2: "Keyword", 3: "Int", 4: "Double", 5: "Bool", 6: "Datetime", 7: "KeywordList"}
    expected = f"invalid value for search attribute {name} of type {type_name[CUSTOM[name]]}: {shown}"
    with pytest.raises(InvalidArgument) as err:
        _prepare(**{name: value})
    assert err.value.message == expected


def test_null_and_empty_values_unset_an_attribute() -> None:
    sa = _attrs(Priority=None, Tags=[])
    prepare_search_attributes("default", CUSTOM, sa)  # no error: these remove the attribute
    null = common.SearchAttributes()
    null.indexed_fields["Priority"].metadata["encoding"] = b"binary/null"
    prepare_search_attributes("default", CUSTOM, null)


def test_single_element_list_is_taken_for_a_scalar_type() -> None:
    _prepare(Priority=[7], CustomerId=["c"])


def test_size_limits() -> None:
    with pytest.raises(InvalidArgument, match=r"value size .* exceeds size limit 2048"):
        _prepare(CustomerId="x" * 3000)
    many: dict[str, int] = {f"K{i}": T.INDEXED_VALUE_TYPE_KEYWORD for i in range(MAX_KEYS + 1)}
    sa = _attrs(**{name: "v" for name in many})
    with pytest.raises(InvalidArgument, match=f"number of search attributes {MAX_KEYS + 1} exceeds limit {MAX_KEYS}"):
        prepare_search_attributes("default", many, sa)
