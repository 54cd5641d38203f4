"""Activation patching between two models of one architecture, and the value lens.

- ``specs``: what a patch is (site, layer, position) and position parsing;
- ``items``: the tokenised items, grouped by prompt and suffix length;
- ``runner``: clean passes and stacked patched passes (the fast path);
- ``selftest``: patching a model into itself must change nothing, bit for bit;
- ``reference``: one full forward pass per patch (slow, obviously correct);
- ``sweep``: every patch on every item into a typed ``SweepResult``;
- ``value_lens``: the RM readout applied to the residual stream at every depth;
- ``pair``: loading a base/RM pair and refusing mismatched ones.
"""
