"""``python -m aicmo``: the same command line as ``aicmo``."""

from aicmo.cli import main

if __name__ == "__main__":
    main(prog_name="aicmo")
