"""Annotation and image files: COCO / labelme / mask-folder readers and writers, image decoding, atomic writes."""
