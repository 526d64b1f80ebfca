"""Work off the GUI thread. Each worker is a ``LatestWins`` (latest.py): one named QThread that serves
the newest job only, so a burst of requests never queues up behind a slow one.

Threads besides the GUI thread (their names are the OS threads' names too):

- "inference" (inference.py, inference_worker.py): owns the Predictor; the newest predict request for
  the image on screen (slider moves coalesce), plus, in order, model loads, masks for drawn boxes and
  "Predict all" batches (which serve the newest request and the boxes between images). Low priority,
  cores - 1 torch threads.
- "image-loader" (loader.py): decodes the newest image file asked for (A/D held down decodes two).
- "project-opener" (opener.py): reads the newest project asked for (``Project.open``); the window stays
  responsive while a large COCO file is parsed.
- "autosave" (autosave.py): writes the newest snapshot of the annotations, debounced; ``flush()``
  writes on the calling thread instead, ordered with the thread by a lock and the edit version.

Training runs in a separate process, not a thread (gui/training/).
"""
