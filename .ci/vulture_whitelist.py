"""Names vulture reports as unused that stay, each group with its reason.

vulture reads this file as one more source (it is never run: dataclass fields without a
default are no class attributes): a name mentioned here counts as used. Remove dead code
instead of adding it here; `vulture --make-whitelist` lists the candidates."""
from simulator.readers import echo_trace, moe_logs

# Readers return plain records of everything a line of the file says: a field no code reads
# yet is still part of the parsed data, the readers' public output.
echo_trace.SubOperation.trace_src_func
echo_trace.SubOperation.func_name
echo_trace.CommStat.mean_ms
echo_trace.CommStat.min_ms
echo_trace.CommStat.max_ms
echo_trace.EchoSummary.forward_step_median_all_ms
echo_trace.EchoSummary.backward_step_median_steady_ms
echo_trace.EchoSummary.forward_compute_median_ms
echo_trace.EchoSummary.backward_compute_median_ms
moe_logs.ProcessTime.total_ms
moe_logs.WaitTime.wait_ms
moe_logs.StepMeans.first_step
moe_logs.StepMeans.last_step
moe_logs.KernelMeans.ag_forward_ms
moe_logs.KernelMeans.ag_backward_ms
moe_logs.KernelMeans.ga_forward_ms
moe_logs.KernelMeans.ga_backward_ms

# The context json's C scanner reads by name (simulator/provenance.py: json.loads's defaults)
from simulator import provenance  # noqa: E402

provenance._Scanning.object_hook
provenance._Scanning.object_pairs_hook
provenance._Scanning.parse_constant

# Hooks that the standard library calls: the tests replace warnings.showwarning to print
# warnings as the CLI does, and an io.RawIOBase subclass answers writable()
import warnings
warnings.showwarning
_.writable  # tests/test_output_safety.py: Full

# Set for a library to read: tqdm reads tqdm.monitor_interval (0: no monitor thread)
_.monitor_interval  # simulator/progress.py, simulator/sweep/runner.py
# simpy's Environment.step reads an event's _ok (loop.succeed_later on simpy's events)
_._ok  # simulator/engine/loop.py
# Python calls a module's __getattr__ for a missing attribute (lazy imports)
_.__getattr__  # simulator/network/__init__.py
# Read by Python and by callers of dataclasses' API: a made __init__'s defaults and
# annotations (simulator/records.py), and Field.kw_only, which a record's field has too
_.__defaults__
_.__annotations__
_.kw_only
_.__wrapped__  # simulator/records.py: inspect.signature follows it
_.__signature__  # simulator/records.py: what inspect.signature returns for it
# Python calls a metaclass's __call__, __iter__ and __len__ for Cls(value), iteration and
# len(Cls) (simulator/names.py: the named constants' Enum behaviours)
_.__call__
_.__iter__
_.__len__
