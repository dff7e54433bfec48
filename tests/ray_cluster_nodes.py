"""Start a two-node Ray cluster on this machine (head + worker node, 1 CPU each) and serve a test from stdin.

Run as a separate process so the test process holds no Ray state of its own (Ray keeps an auth token and a
global worker per process). Prints one JSON line ``{"address", "head", "worker", "ips"}`` (node ids, the
nodes' addresses), then obeys ``kill-worker`` (the worker node's processes killed, by the pids Ray's `Cluster`
started) and ``shutdown`` (also on end of input).

Loopback only: the caller sets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (before Ray is imported), which makes
Ray take 127.0.0.1 as every node's address, as it does on macOS, so the GCS, raylets and workers bind to
127.0.0.1 instead of the machine's routable interface (``--node-ip-address=127.0.0.1`` alone is rewritten to
that interface by Ray). Session files go to the temporary folder named in argv[1], not the shared /tmp/ray."""

from __future__ import annotations

import json
import os
import sys

import psutil
from ray.cluster_utils import Cluster


def listening_addresses(nodes: list) -> list[str]:
    """The local addresses every process of ``nodes`` (GCS, raylets, their helpers) listens on over TCP."""
    found = set()
    for node in nodes:
        for infos in node.all_processes.values():
            for info in infos:
                try:
                    connections = psutil.Process(info.process.pid).net_connections(kind="inet")
                except psutil.Error:
                    continue
                found |= {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN}
    return sorted(found)


def main() -> None:
    temp_dir = sys.argv[1]
    # Ray's Cluster records the head's address in <system temp>/ray/ray_current_cluster, and fails where that
    # folder does not exist (a clean machine): point it into the private folder, so /tmp/ray stays untouched
    os.environ["RAY_TMPDIR"] = temp_dir
    os.makedirs(os.path.join(temp_dir, "ray"), exist_ok=True)
    common = {"num_cpus": 1, "temp_dir": temp_dir}
    cluster = Cluster(initialize_head=True, head_node_args={**common, "include_dashboard": False})
    worker = cluster.add_node(**common)
    ips = sorted({cluster.head_node.node_ip_address, worker.node_ip_address})
    print(json.dumps({"address": cluster.address, "head": cluster.head_node.node_id, "worker": worker.node_id,
                      "ips": ips, "listening": listening_addresses([cluster.head_node, worker])}))
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
