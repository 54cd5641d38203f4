"""Activation sites: names (``names``), where they live per architecture (``architectures``),
reading (``read``), writing (``edit``) and the load-time decomposition check (``check``).

The public API is re-exported here, so ``from interp.sites import Site, SiteReader`` works.
"""

from interp.sites.architectures import BLOCK_LAYOUTS, HookPoint, block_style, hook_points
from interp.sites.check import check_sites
from interp.sites.edit import Replacement, edit_sites, site_hooks
from interp.sites.names import (
    SITE_KINDS,
    Site,
    describe_sites,
    make_sites,
    parse_layers,
    parse_site_kinds,
    parse_sites,
)
from interp.sites.read import BACKENDS, Backend, SiteReader, read_sites

__all__ = [
    "BACKENDS",
    "BLOCK_LAYOUTS",
    "SITE_KINDS",
    "Backend",
    "HookPoint",
    "Replacement",
    "Site",
    "SiteReader",
    "block_style",
    "check_sites",
    "describe_sites",
    "edit_sites",
    "hook_points",
    "make_sites",
    "parse_layers",
    "parse_site_kinds",
    "parse_sites",
    "read_sites",
    "site_hooks",
]
