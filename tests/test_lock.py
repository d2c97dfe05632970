"""One delivering process per data directory; a dead holder leaves no stale lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from monitor.delivery.lock import ProcessLock

HOLD = (
    "import sys, time; from pathlib import Path; from monitor.delivery.lock import ProcessLock; "
    "assert ProcessLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)"
)


def test_a_second_process_cannot_take_the_lock_until_the_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "deliver.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock = ProcessLock(path)
        assert not lock.acquire()
        assert lock.holder() == str(holder.pid)
        holder.kill()  # SIGKILL: the kernel drops the lock
        holder.wait(timeout=10)
        assert lock.acquire()
        lock.release()
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
