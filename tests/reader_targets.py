"""Each reader beyond the workload table, called the way its command calls it: the targets
that the fuzz campaigns (test_fuzz_readers.py, test_fuzz_inputs.py) feed mutated files to."""


def topology(path):
    from simulator.topology import Topology, read_spec
    from simulator.topology.overrides import cluster_for
    spec = read_spec(path)
    cluster_for(spec)
    return Topology(spec)


def sweep(path):
    from simulator.sweep.spec import load_spec
    return load_spec(str(path))


def calibration(path):
    from simulator.calibration.yamlio import load
    return load(path)


def model(path):
    from simulator.generate import load_model_yaml
    return load_model_yaml(str(path))


def measurement_csv(path):
    from simulator.readers.measurement_csv import read_measurement_csv
    return read_measurement_csv(path)


def nccl_tests(path):
    from simulator.readers.nccl_tests import read_nccl_tests
    return read_nccl_tests(path)


def moe_logs(path):
    # every summary the validation draws from a log, so a malformed section fails here
    from simulator.readers.moe_logs import (
        impl_summary_table, kernel_means, mean_last_steps, read_moe_log, summary_step_times)
    log = read_moe_log(path)
    kernel_means(log)
    summary_step_times(log)
    impl_summary_table(log)
    for sec in log.sections:
        if sec.steps:
            mean_last_steps(sec)
    return log


def echo(path):
    from simulator.readers.echo_trace import read_echo_trace, summarize_echo_trace
    return summarize_echo_trace(read_echo_trace(path))


def compute_profile(path):
    from simulator.generate.compute import read_compute_profile
    return read_compute_profile(str(path))
