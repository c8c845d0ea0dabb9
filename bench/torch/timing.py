"""The timing loop shared by the bench/torch CPU baselines: `warmup` untimed
calls (3 unless told), then `repeats` timed calls."""
import statistics
import time


def timed(fn, repeats, warmup=3):
    """(min, median) in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def median_ms(fn, repeats, warmup=3):
    """The median in milliseconds."""
    return timed(fn, repeats, warmup)[1] * 1e3
