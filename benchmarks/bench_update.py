"""Time one SePPO update and its parts, optimized against plain, in one process.

    PYTHONPATH=src python benchmarks/bench_update.py --preset tiny --out benchmarks/out
    PYTHONPATH=src python benchmarks/bench_update.py --preset sd15 --try compile=reference --memory-modes lora full

All options: `--help`; what is measured: `seppo.bench` and benchmarks/README.md.
"""

import sys

from seppo.bench import main

if __name__ == "__main__":
    sys.exit(main())
