from repo_paths import ROOT, SHARED, WORKLOADS, shared_path  # noqa: F401  (for modules that still import them from here)

