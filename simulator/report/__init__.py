"""Reporters: turn a SimulationResult into text, CSV, JSON, Perfetto traces and plots."""
