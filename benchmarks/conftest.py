import os
import sys

# Let the pytest-benchmark files import the helpers in this folder (compare.py etc.).
sys.path.insert(0, os.path.dirname(__file__))
