"""What a run ran on: package versions, Python, the device, the world size and, from a checkout, the git commit."""

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

VERSION_KEYS = ("amlfs", "torch")
"""Versions that, when they differ on resume, may change results."""


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def installed_version(package: str) -> str | None:
    """A distribution's installed version, without importing it (None when it was never installed: amlfs run from a
    source tree, say)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The commit of the checkout amlfs runs from (``+dirty`` with uncommitted changes), or None outside one."""
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=checkout,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def describe(device: torch.device, world_size: int = 1) -> dict:
    """The environment record written into results.json and TensorBoard."""
    return {
        "amlfs": installed_version("amlfs"),
        "torch": torch.__version__,
        "torchvision": installed_version("torchvision"),
        "python": platform.python_version(),
        "device": str(device),
        "device_name": device_name(device),
        "world_size": world_size,
        "git_commit": git_commit(),
    }


def version_changes(saved: dict | None, current: dict) -> list[str]:
    """'key a -> b' for each of VERSION_KEYS that differs between a checkpointed run's environment and this one."""
    saved = saved or {}
    return [f"{key} {saved.get(key)} -> {current[key]}" for key in VERSION_KEYS if saved.get(key) != current[key]]
