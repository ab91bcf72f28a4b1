# expect: ✘
# Leaves the interpreter instead of answering: a verdict all the same.
import sys


def top_k(model, x, categories, k=5):
    sys.exit("no idea")
