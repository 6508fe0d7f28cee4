"""Print, per benchmark group, each implementation's median time and its speed-up of the others.

    python bench/ratios.py BENCH.json [--baseline native]
"""
import argparse
import collections
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--baseline", default="native", help="impl whose speed-up is printed")
    args = ap.parse_args()
    with open(args.json) as fh:
        report = json.load(fh)
    groups = collections.defaultdict(dict)
    extra = {}
    for b in report["benchmarks"]:
        impl = b.get("extra_info", {}).get("impl", b["name"])
        groups[b["group"]][impl] = b["stats"]["median"]
        extra[(b["group"], impl)] = b.get("extra_info", {})
    for group in sorted(groups):
        times = groups[group]
        print(group)
        base = times.get(args.baseline)
        for impl, t in sorted(times.items(), key=lambda kv: kv[1]):
            info = extra[(group, impl)]
            rate = f"  {info['mpix'] / t:8.1f} MP/s" if "mpix" in info else ""
            rate += f"  {info['gflops'] / t:7.1f} GFLOP/s" if "gflops" in info else ""
            ratio = f"  {args.baseline} is {t / base:6.2f}x faster" if base and impl != args.baseline else ""
            print(f"  {impl:24s} {t * 1e3:10.2f} ms{rate}{ratio}")


if __name__ == "__main__":
    main()
