"""The timing loop shared by the bench/torch CPU baselines: 3 warm-up calls,
then `repeats` timed calls; returns (min, median) in seconds."""
import statistics
import time


def timed(fn, repeats):
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)
