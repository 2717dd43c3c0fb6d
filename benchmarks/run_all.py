"""Run every benchmark, each in its own process, and print one summary table.

    python benchmarks/run_all.py [--only training_loop text ...] [--repeats N]

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
BENCHMARKS = ["training_loop", "text", "images", "memory", "latency", "cache"]


def run(name, extra_args, env):
    """Run ``bench_{name}.py``; return its rows, or None when it failed."""
    script = os.path.join(HERE, f"bench_{name}.py")
    with tempfile.TemporaryDirectory() as tmp:
        json_path = os.path.join(tmp, "rows.json")
        command = [sys.executable, script, "--json", json_path, *extra_args]
        print(f"\n=== {os.path.basename(script)} ===", flush=True)
        start = time.perf_counter()
        status = subprocess.run(command, env=env).returncode
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)
        if status != 0 or not os.path.exists(json_path):
            return None
        with open(json_path) as f:
            return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS)
    parser.add_argument(
        "--repeats", type=int, default=None, help="passed on to every script"
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=["PASSIVE", "ACTIVE", "unset"],
        default="PASSIVE",
        help="OMP_WAIT_POLICY of the scripts, unless the environment sets it",
    )
    args = parser.parse_args()
    extra = [] if args.repeats is None else ["--repeats", str(args.repeats)]
    env = dict(os.environ)
    if args.omp_wait_policy != "unset":
        env.setdefault("OMP_WAIT_POLICY", args.omp_wait_policy)

    rows, failed = [], []
    for name in args.only:
        result = run(name, extra, env)
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
