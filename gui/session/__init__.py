"""What is open, Qt-free: the project, the current image, its prediction, the selection, the model reference."""
