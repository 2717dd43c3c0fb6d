"""Helpers shared by the benchmark scripts: timing, CLI options, result rows.

Every script times skmm and its alternative in the same process, in
alternating order (ABBA...), so that a slow spell of the machine weighs on
both sides alike, and reports medians. With ``--json PATH`` a script also
writes its result rows to ``PATH`` for ``run_all.py``.
"""

import argparse
import json
import os
import statistics
import time


def make_parser(description):
    """An argument parser with the options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs of each side"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch intra-op threads (default 2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data")
    parser.add_argument(
        "--json", default=None, help="also write the result rows to this file"
    )
    return parser


def threads_note():
    """Torch's thread count and the OpenMP wait policy, for the output header."""
    import torch

    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    return f"{torch.get_num_threads()} torch threads, OMP_WAIT_POLICY={policy}"


def timed(fn):
    """Run ``fn()``; return ``(seconds, result)``."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def alternate(runs, repeats):
    """Time each callable of ``runs`` ``repeats`` times, in alternating order.

    Parameters
    ----------
    runs : dict of str to callable
        The contenders; each is called without arguments.
    repeats : int
        Timed calls of each.

    Returns
    -------
    times : dict of str to list of float
        Seconds of each call, in call order.
    results : dict of str to object
        What the last call of each returned.
    """
    names = list(runs)
    times = {name: [] for name in names}
    results = {}
    for i in range(repeats):
        for name in names if i % 2 == 0 else reversed(names):
            seconds, results[name] = timed(runs[name])
            times[name].append(seconds)
    return times, results


def median(values):
    return statistics.median(values)


def percentile(values, q):
    """The ``q``-th percentile (0-100) of ``values``, linear interpolation."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def row(item, skmm, alternative, ratio, target, met, unit):
    """One line of the summary table."""
    return {
        "item": item,
        "skmm": float(skmm),
        "alternative": float(alternative),
        "ratio": float(ratio),
        "target": target,
        "met": bool(met),
        "unit": unit,
    }


def format_table(rows):
    """The summary table of ``rows`` as text."""
    header = ("item", "skmm", "alternative", "ratio", "target", "met?")
    lines = [
        (
            r["item"],
            f"{r['skmm']:.4g} {r['unit']}",
            f"{r['alternative']:.4g} {r['unit']}",
            f"{r['ratio']:.3f}",
            r["target"],
            "yes" if r["met"] else "NO",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def finish(rows, json_path):
    """Print the rows as a table and write them to ``json_path`` if given."""
    print()
    print(format_table(rows), flush=True)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(rows, f, indent=1)
