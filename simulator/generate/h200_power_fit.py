"""The H200's power-cap model (power.PowerCap), fitted by
``simulator.generate.power_fit.fit("traces/h200/compute/powercap1")`` on kernels run back to
back and in duty cycles on one H200 (700 W limit); residuals: median 2.1% over the large
GEMM's 1 ms windows, 2.3% over the 30 duty patterns (docs/compute-model.md)."""
from .power import PowerCap

H200_POWER_CAP = PowerCap(cap_w=700.0, idle_w=125.6, mem_w=631.9, compute_w=1340.3,
                          gain=0.2224, tau_ms=50.86,
                          source="fitted on traces/h200/compute/powercap1 (kernels only)")
