"""Head geometry, in the order a photo goes through it (all pure numpy, working-image pixels):

`face` (which face is the subject; eyes, chin, yaw, expression) → `level` (roll, the levelled frame, the
crown) → `crop_rules` (where the spec's box may go without cutting the person) → `crop` (the plan and its
resampling to output pixels); `affine` keeps the input → output mapping every output records.
"""
