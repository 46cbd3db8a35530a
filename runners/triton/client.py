"""The client's side of the server: a tritonclient for the protocol, the model's load, and the
server's statistics extension, which splits a warm-up request into its phases."""
import time
from typing import Any, Callable, Dict, Optional, Tuple

from shared import UnsupportedError

PHASES = ("queue", "compute_input", "compute_infer", "compute_output")
Statistics = Dict[str, Tuple[int, int]]  # statistic -> cumulative (count, ns)


def connect(protocol: str, url: str, startup_timeout_s: float) -> Tuple[Any, Any]:
    """tritonclient's module for the protocol, and a client of the server at `url`."""
    if protocol == "grpc":
        import tritonclient.grpc as grpc

        return grpc, grpc.InferenceServerClient(url=url)
    import tritonclient.http as http

    # network_timeout bounds every call: a TensorRT build in load_model takes minutes, and a
    # slow model's inference as long as it needs (the launcher's --timeout bounds the run)
    return http, http.InferenceServerClient(url=url, connection_timeout=60.0,
                                            network_timeout=max(3600.0, startup_timeout_s))


def load_model(client: Any, model: str, protocol: str, timeout_s: float, log_tail: Callable[[int], str]) -> None:
    """Load the model; Triton's refusal becomes UnsupportedError when it names a missing kernel."""
    from tritonclient.utils import InferenceServerException

    try:
        if protocol == "grpc":
            client.load_model(model, client_timeout=timeout_s)
        else:
            client.load_model(model)
    except InferenceServerException as e:
        message = "Triton could not load the model: {} (server log: {})".format(e.message(), log_tail(6))
        if "NOT_IMPLEMENTED" in message or "Could not find an implementation" in message:
            raise UnsupportedError(message, operator=operator_in(message)) from None
        raise RuntimeError(message) from None


def operator_in(message: str) -> Optional[str]:
    """ONNX Runtime says "Could not find an implementation for Foo(13) node with name '...'"."""
    marker = "implementation for "
    if marker in message:
        return message.split(marker, 1)[1].split("(", 1)[0].strip()
    return None


def statistics(client: Any, model: str, protocol: str) -> Statistics:
    """Cumulative (count, ns) per statistic of the model, from the statistics extension."""
    stats = client.get_inference_statistics(model, as_json=True) if protocol == "grpc" \
        else client.get_inference_statistics(model)
    inference = stats["model_stats"][0].get("inference_stats", {})
    # gRPC's JSON writes 64-bit counters as strings and leaves zero counters out
    return {k: (int(inference.get(k, {}).get("count", 0)), int(inference.get(k, {}).get("ns", 0)))
            for k in ("success",) + PHASES}


def request_phases(read: Callable[[], Statistics], before: Statistics,
                   call_ms: float) -> Tuple[Statistics, Dict[str, float]]:
    """The statistics now, and the milliseconds of one request's phases since `before`: queue,
    compute_input, compute_infer, compute_output, `server_other` (the rest of the server's request
    time) and `client_and_transport` (the call's time outside the server); none when the server
    counted other than exactly this request."""
    # The server may record a request's statistics just after sending its response: wait
    # (briefly) until the success count includes this request, so the delta is this request's.
    expected, deadline = before["success"][0] + 1, time.monotonic() + 0.5
    now = read()
    while now["success"][0] < expected and time.monotonic() < deadline:
        time.sleep(0.001)
        now = read()
    delta = {k: (now[k][0] - before[k][0], now[k][1] - before[k][1]) for k in now}
    if delta["success"][0] != 1:  # not exactly this request
        return now, {}
    parts = {k: delta[k][1] / 1e6 for k in PHASES}
    server_ms = delta["success"][1] / 1e6
    parts["server_other"] = max(0.0, server_ms - sum(parts.values()))
    parts["client_and_transport"] = max(0.0, call_ms - server_ms)
    return now, parts
