"""Fleet mode (`--hosts`): the rows run on the machines of a Ray cluster, each on its node with that
node's own local launcher (Docker image or virtualenv), one benchmark per node at a time.

Ray is the user's distributed engine: e2e connects to a cluster the user started, never opens a
port itself, and asks each row's task for one unit of the node's `e2e-bench` resource, so
timings are never disturbed by a neighbouring row. A machine kind is a node's `e2e-kind:NAME`
custom resource (`ray start --resources '{"e2e-bench": 1, "e2e-kind:NAME": 1}'`).

- `cluster.py`: connect, find the nodes and their kinds.
- `launcher.py`: `RayLauncher`, the `Launcher` of one node: stages the row's files, runs the row
  there, brings back what the runner wrote. The registry finds it as it finds every launcher (a
  folder is one launcher too); being a launcher of other machines (`environment = NODES`), it is
  picked by `--hosts`, made per node by the fleet (coordinator/run/fleet.py), and `--launcher`
  picks the nodes' own launcher.
- `node.py`: what runs on the node.
"""
from coordinator.launchers.ray.cluster import Fleet, Node

__all__ = ["Fleet", "Node"]
