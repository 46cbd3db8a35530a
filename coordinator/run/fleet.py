"""A run over a Ray cluster (--hosts): the nodes of each machine kind, a launcher per node, and
the two ways rows are shared out among them (interleaved on each node, or one row at a time per
node). Each node runs its share in a thread of its own."""
import threading
from typing import Any, Dict, List, Optional, Tuple

from coordinator import engines as engine_registry
from coordinator.config import BenchConfig
from coordinator.engines import REFERENCE
from coordinator.launchers.ray.cluster import Fleet, Node
from coordinator.report.document import Report, Row
from coordinator.run.report_start import UNRUN
from coordinator.run.resident import is_reference, run_interleaved


class FleetRun:
    """The cluster, its nodes by machine kind, and each node's launcher."""

    def __init__(self, cfg: BenchConfig) -> None:
        """Connect (before the export: a wrong cluster fails at once) and find the nodes asked for."""
        from coordinator.launchers import check
        from coordinator.launchers.ray.launcher import RayLauncher

        assert cfg.fleet.hosts
        check(cfg.execution.launcher)  # it names the nodes' own launcher: `--launcher ray` is refused, saying why
        self.cfg = cfg
        self.cluster = Fleet(cfg.fleet.ray_address)
        try:
            self.nodes: Dict[str, List[Node]] = self.cluster.select(cfg.fleet.hosts)
        except BaseException:
            self.cluster.close()
            raise
        self.launchers = {node.node_id: RayLauncher(self.cluster, node, cfg.execution.launcher,
                                                     cfg.execution.memory_limit)
                          for nodes in self.nodes.values() for node in nodes}

    def describe(self) -> str:
        return f"Fleet: Ray at {self.cluster.address}, " + "; ".join(
            f"{kind}: {len(nodes)} node(s)" for kind, nodes in self.nodes.items())

    def launcher(self, node: Node) -> Any:
        return self.launchers[node.node_id]

    def stop(self) -> None:
        """Ctrl-C: the running rows are cancelled (each node's launcher stops its runner as a
        local run's would)."""
        for launcher in self.launchers.values():
            launcher.cancel()

    def close(self, report: Report) -> None:
        report.notes[:] = [n for n in report.notes if not n.startswith("Fleet:")]
        report.notes.append(f"Fleet: Ray {self.cluster.describe()['ray']} at {self.cluster.address}; "
                            + ("each node's rows interleaved in rounds there (the node's e2e-bench unit "
                               "held for the run)." if self.cfg.sequential_because() is None else
                               "one row at a time per node (its e2e-bench resource)."))
        self.cluster.close()

    def on_node(self, row: Row, node: Node, report: Report, lock: threading.Lock) -> Row:
        """A fleet row: its machine kind and node, the node's launcher that ran it, and the node's
        device section (from the node's answer to this row)."""
        row.machine, row.node = node.kind, node.label()
        launcher = self.launcher(node)
        if row.launcher:  # launched: the node says which of its launchers ran it, and on what
            row.launcher = launcher.ran_with()
            answer = launcher.answer
            if answer is not None and answer.device:
                with lock:
                    report.machines.setdefault(node.kind, {})[node.label()] = {
                        **answer.device, **({"launchers": answer.runtime} if answer.runtime else {})}
        return row


def interleave_on_nodes(work: Any, queues: Dict[str, list]) -> None:
    """Interleaved fleet: each kind's rows shared out among its nodes, each node timing its
    share in rounds (through its NodeHost actor, which holds the node's e2e-bench unit). A
    node whose share lacks the reference loads it to pair with, so that every row's ratio to
    the reference is paired on its own node. Rows a lost node could not load go back to
    their kind's queue (a note says so; --resume runs them)."""
    fleet = work.ctx.fleet
    reference = engine_registry.discover()[REFERENCE]
    shares = []
    for kind, queue in queues.items():
        nodes = fleet.nodes[kind]
        partner = reference if any(is_reference(item) for item in queue) else None
        shares += [(queue[i::len(nodes)], node, partner, queue) for i, node in enumerate(nodes)
                   if queue[i::len(nodes)]]  # a node with no row of its own takes no partner either
    for _, _, _, queue in shares:
        queue.clear()

    def run(share: list, node: Node, partner: Any, queue: list) -> None:
        try:
            run_interleaved(work, share, node, partner)
        finally:
            fleet.launcher(node).release()
            with work.lock:
                queue += share  # what the node did not load (it left the cluster)

    in_threads(work, [(args[1].label(), lambda a=args: run(*a)) for args in shares])


def on_nodes(work: Any, queues: Dict[str, list]) -> None:
    """Every node drains its kind's queue in a thread of its own; Ray's e2e-bench resource
    keeps it to one row at a time per node, whoever else uses the cluster."""
    in_threads(work, [(node.label(), lambda q=queues[kind], n=node: work.drain(q, n))
                      for kind, nodes in work.ctx.fleet.nodes.items() for node in nodes])


def in_threads(work: Any, jobs: List[Tuple[str, Any]]) -> None:
    """Each job in a thread of its own; a bug in one is raised again here."""
    failures: List[BaseException] = []

    def call(job: Any) -> None:
        try:
            job()
        except BaseException as e:  # a bug: raised again in the main thread
            failures.append(e)

    threads = [threading.Thread(target=call, args=(job,), daemon=True, name=name) for name, job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():  # a timed join, so Ctrl-C reaches this thread
            thread.join(0.5)
    if failures:
        raise failures[-1]


def unrun(report: Report, queues: Dict[str, list], run_dir: Any) -> None:
    """Rows a fleet kind could not run because its nodes left the cluster: said, for --resume."""
    for kind, queue in queues.items():
        if queue:
            report.notes.append(f"{UNRUN}: {len(queue)} row(s) of machine kind {kind} did not run: its node(s) left the "
                                f"Ray cluster; `e2e bench --resume {run_dir}` runs them once a node of that kind is back.")


def lost(fleet: Optional[FleetRun], node: Optional[Node]) -> bool:
    """Whether the row's node has left the cluster (never, for a row on this machine)."""
    return bool(fleet and node and fleet.launcher(node).lost)
