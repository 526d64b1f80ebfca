"""Start Mask R-CNN Studio: ``python main.py [FOLDER_OR_IMAGE] [--weights FILE]``."""

import sys

from gui.app import main

if __name__ == "__main__":
    sys.exit(main())
