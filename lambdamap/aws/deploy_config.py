"""Writing the client config file that ``lambdamap deploy`` leaves behind (``lambdamap.config`` reads it).

It could live next to the reader in ``lambdamap/config.py``; it is here for now because only deploy writes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lambdamap.config import default_config_path, read_config_file


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_client_config(values: dict[str, Any], path: str | os.PathLike[str] | None = None,
                        remove: tuple[str, ...] = ()) -> Path:
    """Merge ``values`` into the lambdamap config file (``$LAMBDAMAP_CONFIG`` or ~/.config/lambdamap/config.toml),
    dropping the keys in ``remove``; other keys the user set stay. Written atomically."""
    target = Path(path) if path is not None else default_config_path()
    merged = {k: v for k, v in read_config_file(target).items() if k not in remove}
    merged.update({k: v for k, v in values.items() if v is not None})
    text = "# lambdamap client configuration (written by `lambdamap deploy`; edit freely)\n" + "".join(
        f"{k} = {toml_value(v)}\n" for k, v in merged.items())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    return target
