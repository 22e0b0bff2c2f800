"""Run as ``python -m tests.support.prefork_probe`` by the pre-fork tests: prints what a runner would see (its
pid, parent, working directory, an environment variable, whether a preloaded module was already imported) as
JSON, then sleeps or exits with the code the environment asks for."""

import json
import os
import sys
import time

print(
    json.dumps(
        {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "cwd": os.getcwd(),
            "probe": os.environ.get("ACP_PROBE"),
            "argv0": sys.argv[0],
            "preloaded": "tests.support.prefork_preload" in sys.modules,
        }
    ),
    flush=True,
)
time.sleep(float(os.environ.get("ACP_PROBE_SLEEP", "0")))
sys.exit(int(os.environ.get("ACP_PROBE_EXIT", "0")))
