"""Put compiled bytecode into the zips ``spark-submit`` imports pyspark and py4j from.

``spark-submit`` puts ``$SPARK_HOME/python/lib/pyspark.zip`` (and py4j's zip) first on the ``PYTHONPATH`` of
the driver and of every Python process Spark starts (the worker daemon, each streaming query's Python source
runner and planners). Those zips hold sources only, and Python never caches bytecode for a zip: every one of
those processes compiles pyspark again (0.5 s of CPU each on this project's machines), even where
site-packages is compiled. This rewrites each zip with a ``.pyc`` beside every ``.py`` (the layout
``zipimport`` reads), stamped with the ``.py`` entry's own timestamp so that ``zipimport`` accepts it.

Usage: ``python scripts/zip_bytecode.py <zip> [<zip> ...]``. A zip that already holds bytecode is left as
it is; the new zip replaces the old one atomically (a hard link, such as uv's cache, keeps the original).
"""

from __future__ import annotations

import importlib._bootstrap_external as bootstrap
import os
import sys
import time
import zipfile


def has_bytecode(path: str) -> bool:
    with zipfile.ZipFile(path) as z:
        return any(name.endswith(".pyc") for name in z.namelist())


def add_bytecode(path: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info, data)
            if not info.filename.endswith(".py") or "/tests/" in info.filename:
                continue
            # zipimport validates a .pyc against the .py entry's DOS time, read as local time
            mtime = int(time.mktime((*info.date_time, 0, 0, -1)))
            try:
                code = compile(data, f"{path}/{info.filename}", "exec", dont_inherit=True)
            except SyntaxError:
                continue
            pyc = zipfile.ZipInfo(info.filename + "c", info.date_time)
            pyc.compress_type = zipfile.ZIP_DEFLATED
            stamped = bootstrap._code_to_timestamp_pyc(code, mtime, len(data))  # type: ignore[attr-defined]
            zout.writestr(pyc, bytes(stamped))
    os.replace(tmp, path)


def main(paths: list[str]) -> int:
    for path in paths:
        if not has_bytecode(path):
            add_bytecode(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
