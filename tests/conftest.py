import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

# The tests run with the process-wide settings the `ember` command makes (ember/runtime.py),
# made here before any test module imports NumPy: OpenBLAS's idle threads then stop spinning
# ~0.3 ms after a product instead of ~0.1 s, where they would compete with the tests for the
# cores, and ember's array work may use its helper thread as it does in the command.
import ember  # noqa: E402

ember.configure_threads()
