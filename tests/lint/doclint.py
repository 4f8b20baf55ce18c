"""What the documentation checks in tests/lint/ share: the repository they
read (their first argument, else this checkout) and how they end."""
import os
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")


def read(*parts):
    """A file of the repository, as text."""
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def finish(problems, agreed):
    """Prints every problem and exits 1, or prints `agreed` and exits 0."""
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(agreed)
