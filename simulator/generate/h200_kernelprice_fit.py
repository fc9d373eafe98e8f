"""The kernel-price candidate of the H200 fit (not shipped: docs/compute-model.md,
"The kernel-level prices"), fitted by scripts/fit_compute_model.py --kernel-prices
on
traces/h200/compute/run1/kernels.csv
traces/h200/compute/run2/kernels.csv
traces/h200/compute/run3/kernels.csv
traces/h200/compute/run4/kernels.csv
traces/h200/compute/run5/kernels.csv
traces/h200/compute/run6/kernels.csv
traces/h200/compute/run7/kernels.csv
traces/h200/compute/run8/kernels.csv
traces/h200/compute/run9/kernels.csv
traces/h200/compute/run10/kernels.csv
and traces/h200/compute/kernelprice1 (the attention, the QKV split's kernels, the bias
gradient; the element-wise kernels under the power cap) (generated: do not edit by hand;
rerun the script with --kernel-prices --write)."""

H200_KERNELPRICE_FIT = {'attn_bwd': (8.0548, 1.1101, 1267.1742, 64.2061, 6.5961, 64),
 'attn_fwd': (4.9904, 1.3222, 743.4361, 86.8983, 7.0567, 64),
 'fp16_kernels': (1.077, 1.0704, 1.0239),
 'fp8_gemm': (0.7502, 97.52, 3.669),
 'gemm_emax': 0.7908,
 'gemm_layouts': (('dgrad', 0.9966), ('wgrad', 0.9851)),
 'gemm_t0_us': 3.492,
 'gemm_x0': 0.0,
 'gemm_xk': 95.04,
 'host_accum_us': 10.09,
 'host_fixed_bwd_us': 1239.6,
 'host_fixed_fwd_us': 328.51,
 'host_layer_bwd_us': 1217.56,
 'host_layer_fwd_us': 535.51,
 'host_layer_recompute_us': 2514.03,
 'host_ops': (('linear.fwd', 20.74),
              ('layer_norm.fwd', 25.45),
              ('gelu.fwd', 13.11),
              ('dropout.fwd', 23.51),
              ('add.fwd', 12.53),
              ('float.fwd', 18.86),
              ('sdpa.fwd', 76.12),
              ('cross_entropy_fp32.fwd', 64.81),
              ('embedding_pos.fwd', 45.51),
              ('linear_nobias.fwd', 27.06),
              ('backward_call', 117.51),
              ('linear.bwd', 93.05),
              ('layer_norm.bwd', 26.0),
              ('gelu.bwd', 0.0),
              ('dropout.bwd', 0.0),
              ('float.bwd', 0.0),
              ('sdpa.bwd', 1990.78),
              ('cross_entropy_fp32.bwd', 163.12),
              ('embedding_pos.bwd', 2054.23)),
 'host_variants': (('fp8', 1.8397, 1.5174, 1.0947), ('unfused', 1.3472, 1.1865, 0.9898)),
 'mem_ops': (('layer_norm.fwd', 4.833, 3028.1, 552.2),
             ('layer_norm.bwd', 5.794, 2814.4, 700.1),
             ('gelu.fwd', 1.876, 3653.9, 0.4),
             ('gelu.bwd', 1.983, 4109.6, 0.0),
             ('dropout.fwd', 2.444, 3024.2, 0.1),
             ('dropout.bwd', 1.76, 4403.8, 0.0),
             ('add.fwd', 1.631, 4854.2, 0.9),
             ('add.bwd', 3.329, 1992.7, 0.0),
             ('float.fwd', 2.723, 2382.3, 0.6),
             ('float.bwd', 1.663, 3879.6, 0.2),
             ('accum_fp32.fwd', 3.087, 3147.7, 0.0),
             ('zero_fp32.fwd', 1.588, 4576.2, 1.7),
             ('bias_grad.fwd', 6.806, 4507.6, 1498.6),
             ('cross_entropy_fp32.fwd', 39.731, 2149.6, 0.0),
             ('cross_entropy_fp32.bwd', 28.37, 2536.6, 0.0),
             ('embedding_pos.fwd', 1.175, 3531.3, 38.2),
             ('embedding_pos.bwd', 0.0, 679.6, 770.5),
             ('cast_fp8.fwd', 2.121, 3466.0, 137.6),
             ('transpose_fp8.fwd', 2.449, 363.1, 81.0),
             ('qkv_fill.fwd', 1.683, 3327.6, 0.0),
             ('qkv_copy.fwd', 1.115, 1869.6, 0.0),
             ('qkv_add.fwd', 0.0, 4433.2, 0.0)),
 'opt_accum_ns': 0.003507,
 'opt_accum_t0_us': 4.408,
 'opt_clip_ns': 0.002177,
 'opt_dev': (30.19, 0.001179, 62.66, 0.011617),
 'opt_host': (4.038, 6.511, 0.399, 7.735, 62.149, 6.467, 7.921),
 'opt_step': (646.23, 0.010736, 2.549),
 'opt_unscale_ns': 0.002326,
 'opt_zero_ns': 0.000856,
 'unfused_bwd': (68.052, 0.007236),
 'unfused_fwd': (0.0, 0.006953)}
H200_KERNELPRICE_POWER = {'mem_sens': (('accum_fp32.fwd', 0.0757),
              ('add.fwd', 0.0),
              ('dropout.bwd', 0.0),
              ('dropout.fwd', 0.0801),
              ('float.fwd', 0.0),
              ('gelu.bwd', 0.1408),
              ('gelu.fwd', 0.1626),
              ('layer_norm.bwd', 0.0722),
              ('layer_norm.fwd', 0.1417)),
 'mem_threshold_w': 661.7}
