"""The Ray cluster a fleet run uses: connecting to it, its nodes and their machine kinds, and the
files every row needs, put into Ray's object store once per run (a node fetches them only when
its cache lacks their digest)."""
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from shared.errors import one_line

from coordinator.errors import UsageError

KIND = "e2e-kind:"  # a node's machine kind: its custom resource e2e-kind:NAME
BENCH = "e2e-bench"  # one unit per node: one benchmark at a time on it
ALL_KINDS = "all-kinds"
START = ('ray start --head --resources \'{"e2e-bench": 1, "e2e-kind:NAME": 1}\' on the first machine, '
         'ray start --address HEAD:6379 --resources \'{"e2e-bench": 1, "e2e-kind:NAME": 1}\' on the others')


def _reachable(address: str, seconds: float = 10.0) -> None:
    """A host:port that does not answer is one clear line now: ray.init retries it for minutes."""
    import socket

    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return  # "auto": Ray looks for the cluster this machine is a node of, and says so at once
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as e:
        raise UsageError(f"--hosts: no Ray cluster at {address} ({e.strerror or e}); start one ({START}) "
                         "or name it with --ray-address") from None


@dataclass(frozen=True)
class Node:
    """A machine of the fleet that takes e2e rows."""

    node_id: str  # Ray's
    kind: str
    address: str  # its IP, as Ray knows it
    gpus: float = 0.0

    def label(self) -> str:
        """How the report names it: "10.0.0.5 (node 3f2a9c1b0d4e)"."""
        return f"{self.address} (node {self.node_id[:12]})"


class Fleet:
    """A connection to the user's Ray cluster (e2e starts none and opens no port)."""

    def __init__(self, address: Optional[str]) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError("--hosts runs on a Ray cluster: pip install 'e2e[fleet]'") from None
        self.ray = ray
        self.address = address or os.environ.get("RAY_ADDRESS") or "auto"
        _reachable(self.address)
        try:
            ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False,
                     configure_logging=False, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UsageError(f"--hosts: no Ray cluster at {self.address}: {one_line(e, 200)}; "
                             f"start one ({START}) or name it with --ray-address") from None
        self.staged: Dict[Tuple[str, ...], Dict[str, Any]] = {}
        self.digests: Dict[Tuple[str, int, int], str] = {}

    def nodes(self) -> List[Node]:
        """The live nodes that take e2e rows (those with the e2e-bench resource and a kind)."""
        found = []
        for n in self.ray.nodes():
            resources = n.get("Resources", {})
            kinds = sorted(k[len(KIND):] for k in resources if k.startswith(KIND))
            if n.get("Alive") and BENCH in resources and kinds:
                found.append(Node(n["NodeID"], kinds[0], n.get("NodeManagerAddress", ""), resources.get("GPU", 0.0)))
        return sorted(found, key=lambda node: (node.kind, node.node_id))

    def select(self, hosts: str) -> Dict[str, List[Node]]:
        """The nodes of each kind `--hosts` names ('all-kinds': every kind there is)."""
        nodes = self.nodes()
        by_kind: Dict[str, List[Node]] = {}
        for node in nodes:
            by_kind.setdefault(node.kind, []).append(node)
        if not by_kind:
            raise UsageError(f"--hosts: the Ray cluster at {self.address} has no node that takes e2e rows: start "
                             f"each with the e2e-bench and e2e-kind:NAME resources ({START})")
        wanted = [k.strip() for k in hosts.split(",") if k.strip()]
        if wanted == [ALL_KINDS]:
            return by_kind
        missing = [k for k in wanted if k not in by_kind]
        if missing:
            raise UsageError(f"--hosts: no live node of kind {', '.join(missing)} in the Ray cluster at "
                             f"{self.address}; kinds there: {', '.join(by_kind)} (or {ALL_KINDS})")
        return {k: by_kind[k] for k in wanted}

    def alive(self, node_id: str) -> bool:
        return any(n["NodeID"] == node_id and n.get("Alive") for n in self.ray.nodes())

    def stage(self, files: List[Path]) -> Dict[str, Any]:
        """A group of files that must sit in one folder on the node (an ONNX model and its
        external data), put into the object store once per run: its digest, names and refs."""
        key = tuple(str(f) for f in files)
        if key not in self.staged:
            digest = hashlib.sha256()
            for f in files:
                digest.update(f.name.encode() + b"\0" + self._digest(f).encode())
            self.staged[key] = {"digest": digest.hexdigest()[:32], "files": [f.name for f in files],
                                "data": [self.ray.put(f.read_bytes()) for f in files]}
        return self.staged[key]

    def _digest(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self.digests:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            self.digests[key] = h.hexdigest()
        return self.digests[key]

    def describe(self) -> Dict[str, Any]:
        return {"ray": self.ray.__version__, "address": self.address}

    def close(self) -> None:
        self.ray.shutdown()


@dataclass
class NodeAnswer:
    """What a node sends back for a row: the runner's result, the files it wrote in its io folder
    and the node's log, with which of the node's launchers ran it and on what."""

    result: Dict[str, Any]  # RunResult.to_dict()
    files: Dict[str, bytes]  # io-folder path -> content
    log: List[str]
    node: Dict[str, Any]
    device: Dict[str, Any]  # the node's device section
    launcher: str = ""  # the node's local launcher ("" when the row never launched)
    provenance: str = ""
    runtime: Dict[str, Any] = field(default_factory=dict)  # the launcher's description (a Docker version)
    seconds: float = 0.0
