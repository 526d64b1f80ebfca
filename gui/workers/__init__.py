"""Work off the GUI thread: inference, image decoding, autosave (latest-wins worker threads)."""
