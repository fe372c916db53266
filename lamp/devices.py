"""What train, bench and the wrapper share about devices: the weight dtypes by name, free and peak memory."""

from __future__ import annotations

import re
import resource
from pathlib import Path

import psutil
import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Weight dtypes by the name `--dtype` takes ("auto" is each command's own choice)."""


def free_memory_bytes(device: torch.device | str) -> int:
    """Bytes free for new tensors on `device`: CUDA's `mem_get_info` on a GPU, else psutil's available RAM (what
    the OS can give without swapping); other accelerators count as RAM (their memory is often unified)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available


def peak_memory_mb(device: torch.device | str) -> float:
    """MiB: CUDA's max allocated on a GPU, else the process's peak RSS since it started (KiB on Linux)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """CUDA max allocated, or the process's peak RSS since `reset()` (Linux clear_refs; else since start)."""

    def __init__(self, device: str, isolated: bool) -> None:
        self.cuda = device.startswith("cuda")
        self.device = device
        self.resettable = False
        if self.cuda:
            self.kind = "CUDA max allocated"
        else:
            scope = "fresh process per method" if isolated else "shared process, may include earlier rows' memory"
            self.kind = f"peak RSS while measuring ({scope})"

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:  # "5" resets the peak RSS (VmHWM) to the current RSS: the peak then covers only what follows
            Path("/proc/self/clear_refs").write_text("5")
            self.resettable = True
        except OSError:
            self.kind = self.kind.replace("while measuring", "of the process")

    def read_mb(self) -> float:
        """MiB since `reset()` where the probe could reset, else since the process started."""
        if self.resettable:
            match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
            if match:
                return int(match.group(1)) / 1024
        return peak_memory_mb(self.device)
