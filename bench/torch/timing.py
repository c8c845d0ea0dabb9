"""The timing loop shared by the bench/torch CPU baselines: `warmup` untimed
calls (3 unless told), then `repeats` timed calls, and more until
`min_seconds` of them have passed (0 unless told)."""
import statistics
import time


def timed_calls(fn, repeats, warmup=3, min_seconds=0.0):
    """(min, median) in seconds and the number of timed calls."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), len(times)


def timed(fn, repeats, warmup=3):
    """(min, median) in seconds."""
    return timed_calls(fn, repeats, warmup)[:2]


def median_ms(fn, repeats, warmup=3):
    """The median in milliseconds."""
    return timed(fn, repeats, warmup)[1] * 1e3
