"""Random JSON never crashes the readers: it is accepted, or rejected with a ProtocolError."""
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import ProtocolError, RunResult, RunSpec

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
spec_like = st.fixed_dictionaries(
    {"engine": st.text(max_size=5), "model_path": st.text(max_size=5), "inputs_path": st.text(max_size=5)},
    optional={k: json_values for k in ("precision", "device", "warmup", "iterations", "threads", "min_time_s",
                                       "engine_options", "schema_version")})
result_like = st.fixed_dictionaries(
    {"engine": st.text(max_size=5), "status": st.sampled_from(["ok", "failed", "skipped", "bogus"])},
    optional={k: json_values for k in ("latency_ms", "stage", "error", "resources", "stage_seconds")})


def accepted_or_rejected(cls, data):
    try:
        cls.from_dict(data)
    except ProtocolError as e:
        assert str(e)


@settings(max_examples=300, deadline=None)
@given(json_values | spec_like)
def test_spec_reader_never_crashes(data):
    accepted_or_rejected(RunSpec, data)


@settings(max_examples=300, deadline=None)
@given(json_values | result_like)
def test_result_reader_never_crashes(data):
    accepted_or_rejected(RunResult, data)
