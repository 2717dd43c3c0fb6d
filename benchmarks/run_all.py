"""Run the benchmarks, each in its own process, and print one summary table.

    python benchmarks/run_all.py [--only training_loop text ...] [--repeats N]
    python benchmarks/run_all.py --all          # also the four longer scripts

By default the scripts of ``DEFAULT`` run (``make bench``). ``--all`` adds
those of ``EXTRA``: ``bench_lazy_images.py --quick`` (writes 10,000 image
files), ``bench_threads.py`` (starts competing processes),
``bench_distributed.py`` (starts Dask clusters) and ``gpu_check.py`` (a
CUDA GPU; without one it says so and succeeds); ``--only`` picks any of
them by name. The last three print their own tables and add no
line to the summary.

Each script prints its own details as it runs; the table at the end has one
line per item: skmm's figure, the alternative's, their ratio, the target and
whether it is met. The exit status is 1 when a script failed to run (not
when a target is missed).

The scripts run with ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets
it (or ``--omp-wait-policy unset`` is given): OpenMP threads that spin while
waiting make multi-threaded torch timings swing by an order of magnitude as
soon as other processes share the cores, which drowns the difference between
skmm and its alternative. On a quiet machine the policy changes little.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _utils import format_table

HERE = os.path.dirname(os.path.abspath(__file__))
# name: (script, whether it writes summary rows (and takes --json and
# --repeats), its fixed arguments)
SCRIPTS = {
    "training_loop": ("bench_training_loop.py", True, []),
    "text": ("bench_text.py", True, []),
    "images": ("bench_images.py", True, []),
    "memory": ("bench_memory.py", True, []),
    "latency": ("bench_latency.py", True, []),
    "cache": ("bench_cache.py", True, []),
    "scaling": ("bench_scaling.py", True, []),
    "lazy_images": ("bench_lazy_images.py", True, ["--quick"]),
    "threads": ("bench_threads.py", False, []),
    "distributed": ("bench_distributed.py", False, []),
    "gpu_check": ("gpu_check.py", False, []),
}
DEFAULT = ["training_loop", "text", "images", "memory", "latency", "cache", "scaling"]
EXTRA = [name for name in SCRIPTS if name not in DEFAULT]


def run(name, repeats, env):
    """Run the script ``name``; return its rows ([] for a script without
    any), or None when it failed."""
    script, has_rows, fixed = SCRIPTS[name]
    with tempfile.TemporaryDirectory() as tmp:
        json_path = os.path.join(tmp, "rows.json")
        command = [sys.executable, os.path.join(HERE, script), *fixed]
        if has_rows:
            command += ["--json", json_path]
            if repeats is not None:
                command += ["--repeats", str(repeats)]
        print(f"\n=== {' '.join([script, *fixed])} ===", flush=True)
        start = time.perf_counter()
        status = subprocess.run(command, env=env).returncode
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)
        if status != 0:
            return None
        if not has_rows:
            return []
        if not os.path.exists(json_path):
            return None
        with open(json_path) as f:
            return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(SCRIPTS),
        default=None,
        help=f"run these scripts only (default: {' '.join(DEFAULT)})",
    )
    parser.add_argument(
        "--all", action="store_true", help=f"also run {', '.join(EXTRA)}"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="passed on to every script that writes summary rows",
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=["PASSIVE", "ACTIVE", "unset"],
        default="PASSIVE",
        help="OMP_WAIT_POLICY of the scripts, unless the environment sets it",
    )
    args = parser.parse_args()
    if args.only is not None and args.all:
        parser.error("--only and --all do not go together")
    names = args.only or (DEFAULT + EXTRA if args.all else DEFAULT)
    env = dict(os.environ)
    if args.omp_wait_policy != "unset":
        env.setdefault("OMP_WAIT_POLICY", args.omp_wait_policy)

    rows, failed = [], []
    for name in names:
        result = run(name, args.repeats, env)
        if result is None:
            failed.append(name)
        else:
            rows.extend(result)

    print("\n=== summary ===")
    print(format_table(rows))
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
