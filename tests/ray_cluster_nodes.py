"""Start a two-node Ray cluster on this machine (head + worker node, 1 CPU each) and serve a test from stdin.

Run as a separate process so the test process holds no Ray state of its own (Ray keeps an auth token and a
global worker per process). Prints one JSON line ``{"address", "head", "worker"}`` (node ids), then obeys
``kill-worker`` (the worker node's processes killed, by the pids Ray's `Cluster` started) and ``shutdown``
(also on end of input)."""

from __future__ import annotations

import json
import sys

from ray.cluster_utils import Cluster


def main() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    print(json.dumps({"address": cluster.address, "head": cluster.head_node.node_id, "worker": worker.node_id}))
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            if line.strip() == "kill-worker":
                cluster.remove_node(worker, allow_graceful=False)
                print("ok", flush=True)
            elif line.strip() == "shutdown":
                break
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
