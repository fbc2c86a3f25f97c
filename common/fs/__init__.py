"""The safe tree walk: nothing under a managed root is ever reached through a symbolic link.

A managed root (``TEMP_DIR``, ``CACHE_DIR``) is trusted as configured except its last component, which
must be a real directory. Below it, every directory is opened one component at a time relative to its
parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY``, and entries are created and removed relative to
such a descriptor: a link under the root is an entry like any other, unlinked itself, its target never
touched. The walk is iterative (any depth) and keeps at most :data:`MAX_OPEN_FDS` descriptors open;
deeper levels are reopened through ``..`` on the way back up and checked to be the very directory
(device, inode) seen on the way down, so a tree moved meanwhile stops the walk instead of leading it
outside the root. The statistics are dataclasses that also read like the seeds' dicts.

- :mod:`common.fs.walk`: opening and creating below a root (``open_root``, ``open_below``, ``open_chain``,
  ``create_entry``) and ``Walk``;
- :mod:`common.fs.prune`: what is built on it: ``prune_tree`` (by age), ``prune_entry`` and
  ``remove_below`` (whole entries), ``evict_lru`` (the size cap);
- :mod:`common.fs.stats`: what they report (``CleanupStats``, ``CacheEvictionStats``) and ``refuse``.
"""

from common.fs.prune import evict_lru, open_reporting, prune_entry, prune_tree, remove_below
from common.fs.stats import CacheEvictionStats, CleanupStats, FailureReport, SkipReason, refuse
from common.fs.walk import (
    DIR_FLAGS,
    ENTRY,
    LEAVE,
    MAX_OPEN_FDS,
    UNSAFE_PATH,
    Walk,
    create_entry,
    describe_entry,
    managed_root,
    open_below,
    open_chain,
    open_root,
)

__all__ = [
    "DIR_FLAGS",
    "ENTRY",
    "LEAVE",
    "MAX_OPEN_FDS",
    "UNSAFE_PATH",
    "CacheEvictionStats",
    "CleanupStats",
    "FailureReport",
    "SkipReason",
    "Walk",
    "create_entry",
    "describe_entry",
    "evict_lru",
    "managed_root",
    "open_below",
    "open_chain",
    "open_reporting",
    "open_root",
    "prune_entry",
    "prune_tree",
    "refuse",
    "remove_below",
]
