"""The seed's network, one concept a file: blocks, backbone, fpn, box_utils, rpn, roi_heads, mask_rcnn."""
