"""Hostile inputs for the fuzz tests: arbitrary JSON, the contract's field names with wrong values, raw bytes."""

import json

from hypothesis import strategies as st

from protocol import schemas

FIELD_NAMES = sorted(
    {name for schema in schemas.SCHEMAS.values() for name in schema.model_fields}
    | {"progressPercent", "parameters", "summary", "details", "currentInfusion", "__proto__", ""}
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
    | st.sampled_from(["running", "ONLINE", " paused ", "MANUAL_STOP", "PUMP_0001", "2026-11-28T10:00:00Z", "1e309"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
# Objects that look like the contract's: its field names, any values.
contract_like = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=12), json_values, max_size=8)
json_documents = json_values | contract_like


def as_bytes(document) -> bytes:
    """A JSON document as a pump would send it."""
    return json.dumps(document).encode()


raw_payloads = (
    json_documents.map(as_bytes)
    | st.binary(max_size=200)
    | st.text(max_size=200).map(lambda text: text.encode("utf-8", errors="surrogatepass"))
    | st.sampled_from([b"NaN", b'{"status": NaN}', b'{"a": Infinity}', b"[" * 5000, b"{" * 3000, b"\x00"])
)

# Reports that pass or nearly pass the schemas, so hostile values reach the services, not only the parser.
CURRENT = "<current infusion>"  # replaced by the test with the pump's active infusion id
edge_numbers = (
    st.sampled_from([0, -1, 0.0001, 1e-9, 99.9999, 100, 100.0001, 1000, 10000, 10001, 2**31, 2**53, 2**63, 1e308])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
)
infusion_ids = st.sampled_from([CURRENT, CURRENT, "inf-other", "x" * 64, "x" * 65, ""]) | st.text(max_size=8)
texts = st.text(max_size=40) | st.just("x" * 501)
alarm_types = st.sampled_from(["occlusion", "occlusion_cleared", "bubble_detected", "bubble_cleared",
                               "device_error", "communication_lost", "low_battery", "a.b-c"]) | texts  # fmt: skip
severities = st.sampled_from(["HIGH", "critical", "Medium", "warning", "low", "info", "bogus", ""]) | st.none()


def _optional(**fields) -> dict:
    return fields


REPORTS = {
    "status": st.fixed_dictionaries(
        {"status": st.sampled_from(schemas.STATUS_VALUES) | st.sampled_from(["ONLINE ", "Running"])},
        optional=_optional(
            batteryLevel=edge_numbers,
            firmwareVersion=texts,
            uptime=edge_numbers | texts,
            currentInfusion=json_values,
            progress=json_values,
        ),  # fmt: skip
    ),
    "progress": st.fixed_dictionaries(
        {},
        optional=_optional(
            timeRemainingMin=edge_numbers,
            volumeRemainingMl=edge_numbers,
            deliveredVolumeMl=edge_numbers,
            elapsedTimeMin=edge_numbers,
            flowRate=edge_numbers,
            infusionId=infusion_ids,
            progressPercent=edge_numbers
            | st.fixed_dictionaries({}, optional={"time": edge_numbers, "volume": edge_numbers}),
            status=st.sampled_from(["running", "paused", "completed"]),
        ),  # fmt: skip
    ),
    "infusion": st.fixed_dictionaries(
        {"infusionId": infusion_ids, "confirmed": st.booleans()},
        optional=_optional(
            confirmedAt=edge_numbers | texts,
            parameters=st.fixed_dictionaries(
                {},
                optional=_optional(
                    flowRateMlMin=edge_numbers,
                    plannedVolumeMl=edge_numbers,
                    plannedTimeMin=edge_numbers,
                    bolusEnabled=st.booleans(),
                    bolusVolumeMl=edge_numbers,
                ),
            ),
        ),
    ),  # fmt: skip
    "completion": st.fixed_dictionaries(
        {"completed": st.just(True)}, optional=_optional(infusionId=infusion_ids, summary=json_values)
    ),
    "actions": st.fixed_dictionaries(
        {"action": st.sampled_from(["MANUAL_PAUSE", "MANUAL_RESUME", "MANUAL_STOP"])},
        optional=_optional(infusionId=infusion_ids, reason=texts, source=texts),
    ),
    "error": st.fixed_dictionaries(
        {},
        optional=_optional(
            type=alarm_types,
            severity=severities,
            message=texts,
            errorMessage=texts,
            errorCode=st.integers() | texts,
            details=json_values,
        ),  # fmt: skip
    ),
    "bolus": st.fixed_dictionaries(
        {}, optional=_optional(action=texts, infusionId=infusion_ids, bolusDelivered=edge_numbers)
    ),
    "test": st.fixed_dictionaries({}, optional=_optional(test=texts)),
}
envelope = st.fixed_dictionaries(
    {},
    optional=_optional(seq=st.integers(min_value=-1, max_value=2**64), bootId=st.sampled_from(["b1", "b2", ""]),
                       timestamp=edge_numbers | texts, deviceId=st.sampled_from(["PUMP_FUZZ", "PUMP_OTHER", "a b"])),
)  # fmt: skip


@st.composite
def plausible_reports(draw) -> tuple[str, dict]:
    """(kind, payload): a report of that kind with edge values, plus the envelope fields."""
    kind = draw(st.sampled_from(sorted(REPORTS)))
    return kind, {**draw(envelope), **draw(REPORTS[kind])}


# Documents that Python's json module mishandles (round 2): each fragment below, dropped into an otherwise
# plausible report, made `json.loads` raise something other than JSONDecodeError or return what no
# database stores. The bridge's decode path must refuse all of them with a reason.
HOSTILE_FRAGMENTS = (
    "9" * 4301,  # ValueError: Exceeds the limit (4300 digits) for integer string conversion
    "-" + "1" * 5000,
    "1e999",  # float overflow to inf
    "-1e400",
    "0." + "5" * 400,
    "[" * 3000 + "]" * 3000,  # RecursionError
    '{"a":' * 2000 + "1" + "}" * 2000,
    '"\\ud800"',  # a lone surrogate escape
    '{"\\udfff": 1}',
    '{"k": 1, "k": 2}',  # duplicate keys
    "NaN",
    "Infinity",
)


@st.composite
def hostile_documents(draw) -> bytes:
    """A contract-like document with a hostile fragment as a value, a duplicate key, or invalid UTF-8 inside."""
    document = draw(contract_like)
    fragment = draw(st.sampled_from(HOSTILE_FRAGMENTS))
    key = draw(st.sampled_from(FIELD_NAMES))
    body = json.dumps(document)
    how = draw(st.sampled_from(["value", "duplicate", "bad_utf8"]))
    if how == "value":
        spliced = body[:-1] + ("," if document else "") + f"{json.dumps(key)}: {fragment}}}"
        return spliced.encode()
    if how == "duplicate":
        return (body[:-1] + ("," if document else "") + f'"{key}": 1, "{key}": 2}}').encode()
    raw = body.encode()
    cut = draw(st.integers(min_value=0, max_value=len(raw)))
    return raw[:cut] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])) + raw[cut:]


every_payload = hostile_documents() | raw_payloads
