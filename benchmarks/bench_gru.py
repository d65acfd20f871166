"""Training-step throughput of a GRU in ember and in PyTorch: ``bench_lstm.py --cell GRU``.

    python benchmarks/bench_gru.py [--threads 2] [--configs 128x28x28x128 ...] [--windows 9] [--numpy]
"""

import os
import runpy
import sys

if __name__ == "__main__":
    sys.argv[1:1] = ["--cell", "GRU"]
    runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_lstm.py"), run_name="__main__")
