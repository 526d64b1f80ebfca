"""The reviewer's aids (issue 13, items 11-13): the review queue, per-image figures, the Errors view.

The queue walks an image's predictions from least to most confident; the image list sorts images by the work
they are expected to need; the Errors view marks where the model disagrees with the ground truth.
"""
