"""Workload generation: a model and a parallel configuration -> a workload table.

``resolve`` checks a configuration, ``generate`` builds its rows (AICB's layout, Megatron's
or AICB's sizes) with compute times from a GPU model; see docs/generate-and-sweep.md.
"""
from .builder import GeneratedWorkload, generate
from .config import STYLES, TrainConfig, resolve
from .gpu import GPUS, GPUSpec, fit_gemm_curve, get_gpu
from .models import PRESETS, ModelSpec, get_preset, load_model_yaml, with_overrides

__all__ = ["GeneratedWorkload", "generate", "STYLES", "TrainConfig", "resolve", "GPUS",
           "GPUSpec", "fit_gemm_curve", "get_gpu", "PRESETS", "ModelSpec", "get_preset",
           "load_model_yaml", "with_overrides"]
