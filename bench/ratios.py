"""Print, per benchmark group, each implementation's median time and its speed-up of the others.

    python bench/ratios.py BENCH.json [--baseline native] [--same-precision]

--same-precision: also print, for every entry that names its counterpart (extra_info "same_as",
e.g. deepshop auto -> "openvino-direct-fp32", the OpenVINO-from-Python entry in the precision auto
took), the counterpart's median time over the entry's (>= 1: the entry is at least as fast).
"""
import argparse
import collections
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--baseline", default="native", help="impl whose speed-up is printed")
    ap.add_argument("--same-precision", action="store_true",
                    help="ratios of entries against their named counterpart (same_as), same group")
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
    if args.same_precision:
        print("against the same precision (counterpart median / entry median; >= 1: at least as fast)")
        for group in sorted(groups):
            for impl, t in sorted(groups[group].items()):
                other = extra[(group, impl)].get("same_as")
                if not other:
                    continue
                match = [k for k in groups[group] if k == other or k.endswith(f"[{other}]")]
                if match:
                    ratio = groups[group][match[0]] / t
                    print(f"  {group:22s} {impl:34s} {t * 1e3:9.1f} ms vs {match[0]:30s} "
                          f"{groups[group][match[0]] * 1e3:9.1f} ms: {ratio:5.2f}x")
                else:
                    print(f"  {group:22s} {impl:34s} (no {other} entry in this run)")


if __name__ == "__main__":
    main()
