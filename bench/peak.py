"""Run a callable `module:function` with string args, then print the process's peak RSS.

`python -m bench.peak bench.baselines:baseline_convert IN OUT` prints
`PEAK_RSS_KB=...` on stderr, read by harness.measure; `python -m bench.peak
kbpipe ARGS` runs the kbpipe command the same way.
"""

import importlib
import resource
import sys


def main() -> None:
    target, *args = sys.argv[1:]
    if target == "kbpipe":  # the command itself, as its console script runs it
        from kbpipe.cli import main as kbpipe

        code = kbpipe(args)
        if code:
            sys.exit(code)
    else:
        module_name, func_name = target.split(":")
        getattr(importlib.import_module(module_name), func_name)(*args)
    own = _own_peak_kb()
    # RUSAGE_CHILDREN covers worker processes, if the function started any.
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"PEAK_RSS_KB={max(own, kids)}", file=sys.stderr)


def _own_peak_kb() -> int:
    # ru_maxrss is inherited across fork on Linux, so it would include the
    # parent's memory at launch; VmHWM is this process's own high-water mark.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    main()
