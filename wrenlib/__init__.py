"""wrenlib: the helper library of the wrenbook, an executable replication of *Explainability of CNN
Based Classification Models for Acoustic Signal* (arXiv 2509.08717).

Each module is one stage of the pipeline and names the chapter that explains it.
"""

from .book import start_chapter
from .cache import load_or_build, read_results, record_result, result_key
from .profiles import Profile, get_profile
from .runtime import choose_device, describe_device, set_seed

__all__ = [
    "Profile",
    "choose_device",
    "describe_device",
    "get_profile",
    "load_or_build",
    "read_results",
    "record_result",
    "result_key",
    "set_seed",
    "start_chapter",
]

__version__ = "0.1.0"
