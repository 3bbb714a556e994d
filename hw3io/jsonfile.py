"""Reading a user's JSON file: a missing, unreadable or malformed file is one error line naming it."""
import json
from pathlib import Path

from .errors import UserError


def read_json(path, what: str):
    """``what`` names the file in the error ("objects file", "boxes file")."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both are
        raise UserError(f"{what} {path} is not JSON ({e})") from None
