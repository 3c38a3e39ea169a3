"""Each paper's tables and figures, rendered only from result files (one module per paper).

``hpcm`` (notebook 03), ``tinylic`` (notebook 02), ``cgoo`` (notebook 01); ``common`` holds what they
share (paper-vs-ours tables, BD-rate cells, visual comparisons).
"""
