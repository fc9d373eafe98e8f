"""The H200's power-cap model (power.PowerCap), fitted by
``simulator.generate.power_fit.fit("traces/h200/compute/powercap1",
"traces/h200/compute/powercap2", GPUS["h200"], "traces/h200/compute/powercap3")``
(tests/test_power.py checks it) on kernels run back to back, in duty cycles and in GEMM +
element-wise mixes on one H200 (700 W limit), their steady windows (from 200 ms, without the
start-up dip at 0.7-1.1 s), and a GPT layer's own GEMMs and fused attention sustained alone;
residuals: median 1.0% over the large GEMM's windows, 1.1% over the 30 duty patterns,
-0.0..+0.6% over the 4 mixes, 1.3% over the 60 layer GEMMs; the GEMM curve referred to the
boost clock by 171 GEMMs from a rested GPU (median 1.3%). docs/compute-model.md."""
from .power import PowerCap

H200_POWER_CAP = PowerCap(cap_w=700.0, idle_w=125.6, mem_w=593.3, compute_w=1628.3,
                          gain=0.1840, tau_ms=33.14, gemm_boost=1.0384, threshold_w=987.6,
                          attn_fwd_w=1156.5, attn_bwd_w=727.3,
                          source="fitted on traces/h200/compute/powercap1-3 (kernels only)")
