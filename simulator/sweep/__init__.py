"""What-if sweeps: expand a YAML grid, generate and simulate every point in parallel.

``spec`` reads and expands the YAML file, ``runner`` runs points on any
``concurrent.futures.Executor`` (process pool, Dask, serial) with an on-disk cache, and
``report`` writes the CSV, the best configurations and the plots.
"""
from .runner import Cache, SerialExecutor, make_executor, run_point, run_points
from .spec import SweepSpec, load_spec, point_key, spec_from_dict

__all__ = ["Cache", "SerialExecutor", "make_executor", "run_point", "run_points", "SweepSpec",
           "load_spec", "point_key", "spec_from_dict"]
