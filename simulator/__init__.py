"""collsim: a trace-driven network and collective simulator for distributed LLM and MoE training."""
__version__ = "0.1.0"
