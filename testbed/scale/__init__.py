"""Scale-out on Dask distributed: crafting, simulated sweeps and replay beyond one machine.

Typical use::

    spec = parse_cluster("local:2")          # or "none", or "tcp://host:8786"
    with open_client(spec) as client:
        executor = DaskExecutor(client) if client is not None else None
        Runner(store, rig, plan, models, executor=executor, craft_cache=PerturbationCache()).run()

Workers receive arrays and plain configuration; models travel as their card and safetensors
bytes and are loaded once per worker; this process alone writes the session store.
"""

from testbed.scale.cache import PerturbationCache, default_cache_root, perturbation_key
from testbed.scale.cluster import ClusterError, ClusterSpec, dashboard_link, n_slots, open_client, parse_cluster
from testbed.scale.craft import CraftResult, craft_plan
from testbed.scale.executor import DaskExecutor, open_executor
from testbed.scale.worker import ModelRef, model_ref

__all__ = [
    "ClusterError", "ClusterSpec", "CraftResult", "DaskExecutor", "ModelRef", "PerturbationCache",
    "craft_plan", "dashboard_link", "default_cache_root", "model_ref", "n_slots", "open_client", "open_executor",
    "parse_cluster", "perturbation_key",
]
