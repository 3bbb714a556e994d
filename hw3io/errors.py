"""Bad input ends in one clear line and a non-zero exit, never a traceback."""
import sys


class UserError(Exception):
    """An error caused by the user's input (paths, files, flags); printed as one line."""


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; turn UserError into ``error: ...`` on stderr and exit status 2."""
    try:
        return main(argv) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
