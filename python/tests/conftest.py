"""`PYTHONPATH=python python -m pytest python/tests -q` (the PYTHONPATH is optional: python/ is put on sys.path here).

Keras runs on the torch backend unless KERAS_BACKEND says otherwise. Tests skip when torch / keras are absent.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
