"""The image view: the picture, the mask and box layers, the tools' feedback items; drawing only."""
